"""What the training jobs read: the LoRA, launch and stage sections, and the jobs built from them (SFT, RL, RFT;
each kind's entry in stages.py names its section and job here)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..training.methods import RL_METHODS
from .base import SEED_MAX, JobSettings, Numerics, Strict
from .generation import CONTINUOUS_UNDER_AUTOCAST, GenerationConfig
from .prompt import PromptSpec

# the reward functions grading/rewards.py builds (not imported here: SFT jobs read this module, and a reward edit
# must not replan them)
RewardName = Literal["format", "correctness", "binary", "calibration", "random"]
RLName = str  # a key of training/methods.py's RL_METHODS (checked against the registry, so a test can add one)


def registered_method(name: str) -> str:
    if name not in RL_METHODS:
        raise ValueError(f"unknown RL method {name!r}; registered: {', '.join(RL_METHODS)}")
    return name


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

    def process_count(self) -> int:
        """Processes the stage is launched with, as the config decides it (common.smk's launch; a --set-resources
        gpu override can still change it at launch)."""
        return self.processes or max(1, self.gpus)


class TrainingStageConfig(LaunchConfig):
    """Speed settings the trainer would otherwise take from TRL's defaults (gradient checkpointing is on there)."""
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% more time")
    liger_kernel: bool = Field(False, description="Liger's fused kernels (needs liger-kernel installed; GPU)")
    torch_compile: bool = Field(False, description="torch.compile the model before training")
    eval_checkpoints: int | list[int] = Field(
        0, description="Learning curve: also evaluate the model at these optimizer steps, or every N steps "
                       "(N needs training_args.max_steps); 0 or [] off. Part of the stage's chain: the kept models "
                       "are planned with the training")

    def _max_steps(self) -> int | None:
        last = getattr(self, "training_args", {}).get("max_steps")
        return last if isinstance(last, int) and last > 0 else None

    def curve_steps(self) -> list[int]:
        """The intermediate steps evaluated (the end of the stage is evaluated anyway); `_curve_fits` has made
        sure every N comes with max_steps and no listed step reaches it."""
        every = self.eval_checkpoints
        if isinstance(every, int):
            return list(range(every, self._max_steps(), every)) if every else []
        return sorted(set(every))

    @model_validator(mode="after")
    def _curve_fits(self) -> "TrainingStageConfig":
        every, last = self.eval_checkpoints, self._max_steps()
        bounded = last is not None
        if isinstance(every, int) and every < 0 or isinstance(every, list) and any(s < 1 for s in every):
            raise ValueError("eval_checkpoints: steps count from 1")
        if isinstance(every, int) and every and not bounded:
            raise ValueError(f"eval_checkpoints: every {every} steps needs training_args.max_steps; or list the "
                             "steps")
        if isinstance(every, list) and bounded and any(s >= last for s in every):
            raise ValueError(f"eval_checkpoints: steps {sorted(s for s in every if s >= last)} are not before the "
                             f"last step ({last}), which the stage's own evaluation covers")
        return self


class SFTStageConfig(TrainingStageConfig):
    max_length: int = Field(512, ge=16, description="Longest tokenized prompt+completion; longer rows are truncated")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.SFTConfig / TrainingArguments field, passed through")


class RFTStageConfig(SFTStageConfig):
    """Rejection-sampling fine-tuning (Yuan et al., arXiv 2308.01825): SFT on the parent's own correct samples."""
    samples: int = Field(4, ge=1, le=64, description="Completions sampled per training question from the parent (k)")
    keep: int = Field(4, ge=1, description="Most correct, distinct completions kept per question (m)")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature")
    max_new_tokens: int = Field(192, ge=8, description="Longest sampled completion in tokens")
    batch_size: int = Field(32, ge=1, description="Completions generated together")
    with_sft_rows: bool = Field(False, description="Also train on prep SFT's rows, as Yuan et al. train on the SFT "
                                                   "data with the samples (here the model starts from prep SFT, "
                                                   "which has trained on them once already)")

    @model_validator(mode="after")
    def _keep_and_length_fit(self) -> "RFTStageConfig":
        if self.keep > self.samples:
            raise ValueError(f"keep: {self.keep} is more than samples ({self.samples}) can give")
        if self.max_new_tokens >= self.max_length:
            raise ValueError(f"max_new_tokens: {self.max_new_tokens} does not fit in max_length ({self.max_length}) "
                             "with its prompt: kept samples would lose their answers to truncation")
        return self


class RLStageConfig(TrainingStageConfig):
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the group)")
    max_completion_length: int = Field(192, ge=8, description="Longest sampled completion in tokens")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the RL rollouts")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting model")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.GRPOConfig / TrainingArguments field, passed through")


# training_args that change how a run is logged, saved, named or published, never its weights: left out of the
# chain (turning on W&B or logging more often trains nothing again) and of the checkpoint stamp (a run killed
# under one save cadence resumes under another). tests/slow/test_rerun.py holds that they plan no job.
BOOKKEEPING_ARGS = frozenset({
    "report_to", "run_name", "project", "trackio_space_id", "logging_dir", "logging_strategy", "logging_steps",
    "logging_first_step", "log_level", "log_level_replica", "log_on_each_node", "disable_tqdm", "save_strategy",
    "save_steps", "save_total_limit", "save_only_model", "save_on_each_node", "push_to_hub", "hub_model_id",
    "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision", "log_completions",
    "num_completions_to_print", "wandb_log_unique_prompts", "log_unique_prompts"})


class TrainingJob(Numerics, JobSettings):
    """What every training job reads besides its stage section."""
    stage: str = Field(description="The stage it trains (stages.py)")
    seed: int = Field(ge=0, le=SEED_MAX, description="Training seed")
    prompt: PromptSpec = Field(description="The prompt the stage trains with")
    finetune: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA (merged after the stage)")
    lora: LoraConfig | None = Field(None, description="LoRA settings when finetune is lora")

    def stamp(self) -> dict[str, Any]:
        """What determines the weights: the settings without the bookkeeping training_args, and without
        eval_checkpoints when curves are off (configs from before curves keep their chains)."""
        out = self.model_dump()
        if not out.get("eval_checkpoints"):
            out.pop("eval_checkpoints", None)
        if "training_args" in out:
            out["training_args"] = {k: v for k, v in out["training_args"].items() if k not in BOOKKEEPING_ARGS}
        return out

    def reads(self) -> dict[str, str]:
        """Files the job reads beside its parent model and data split, by the entry point's flag (`--<name>`):
        "targets" (the confidence targets of its prompt), "split:<split>" (a data split), "stage:<stage>" (a
        stage of the same row) or a model folder. The workflow makes each an input of the stage's rule."""
        return {}

    def read_stages(self) -> dict[str, str]:
        """The other stages of its row it reads (flag -> stage): the `stage:` entries of `reads()`."""
        return {flag: ref.removeprefix("stage:") for flag, ref in self.reads().items() if ref.startswith("stage:")}

    def trained_rows(self, rows: int, split_size) -> tuple[int, str]:
        """The rows an epoch trains on, at most (counted before the job runs), and how they were counted ("" where
        it is the split's rows); `split_size(name)` is a data split's size."""
        return rows, ""

    def trainer_fixed(self) -> dict[str, Any]:
        """TRL config fields this job's own keys set (so they are refused under training_args)."""
        return {}

    def generates_in_groups(self) -> bool:
        """Whether the trainer hands out whole generation batches (dropping the prompts left over) rather than rows
        (training/steps.py counts its length either way)."""
        return False

    def length_facts(self, facts: dict[str, Any] | None) -> dict[str, Any] | None:
        """What TRL resolved (training/arguments.py's FACTS), completed where the trainer derives a batch its
        config does not name."""
        return facts

    @model_validator(mode="after")
    def _curve_needs_full_weights(self) -> "TrainingJob":
        if self.finetune == "lora" and getattr(self, "eval_checkpoints", 0):
            raise ValueError("eval_checkpoints: learning curves need finetune full (a LoRA checkpoint holds the "
                             "adapter only)")
        return self


class SFTJob(SFTStageConfig, TrainingJob):
    completion_only_loss: bool = Field(True, description="Mask the prompt out of the loss")
    train_data: Literal["main", "socratic"] = Field("main", description="Which reasoning the targets carry")

    def reads(self) -> dict[str, str]:
        """A confidence row's SFT trains on the confidence measured for each of its rows."""
        return {"confidence_targets": "targets"} if self.prompt.confidence else {}

    def trainer_fixed(self) -> dict[str, Any]:
        """TRL config fields this job's own keys set (so they are refused under training_args)."""
        return {"max_length": self.max_length, "completion_only_loss": self.completion_only_loss}


class RFTJob(RFTStageConfig, GenerationConfig, TrainingJob):
    """The RFT stage's job: it samples through the one generation engine (generation.engine), then trains as SFT."""
    stage: str = "rft"
    completion_only_loss: bool = Field(True, description="Mask the prompt out of the loss")

    def reads(self) -> dict[str, str]:
        return {"sft_rows": "split:prep_sft"} if self.with_sft_rows else {}

    def trained_rows(self, rows: int, split_size) -> tuple[int, str]:
        """What it keeps is known once it has sampled: at most `keep` (and `samples`) per question."""
        kept = min(self.samples, self.keep)
        extra = split_size("prep_sft") if self.with_sft_rows else 0
        return rows * kept + extra, (f"{rows} questions x at most {kept} kept samples"
                                     f"{f' + {extra} prep SFT rows' if extra else ''}")

    def stamp(self) -> dict[str, Any]:
        """Without with_sft_rows when off, so RFT chains from before the option keep their names."""
        out = super().stamp()
        if not out.get("with_sft_rows"):
            out.pop("with_sft_rows", None)
        return out

    def trainer_fixed(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "completion_only_loss": self.completion_only_loss}


class RLJob(RLStageConfig, GenerationConfig, TrainingJob):
    """The RL stage's job: its rollouts follow the one generation engine setting (generation.engine)."""
    stage: str = "rl"
    rl: RLName = Field("grpo", description="The RL method (training/methods.py's registry) training the stage")
    rewards: list[RewardName] = Field(description="The RL stage's reward functions")

    @field_validator("rl")
    @classmethod
    def _registered(cls, v: str) -> str:
        return registered_method(v)

    @model_validator(mode="after")
    def _rollouts_need_no_autocast(self) -> "RLJob":
        if self.engine == "continuous" and self.mixed_precision in ("bf16", "fp16"):
            raise ValueError(CONTINUOUS_UNDER_AUTOCAST)
        return self

    def stamp(self) -> dict[str, Any]:
        """Without the engine when it is `auto`, so chains from before rollouts followed it keep their names."""
        out = super().stamp()
        if out.get("engine") == "auto":
            out.pop("engine")
        return out

    def generates_in_groups(self) -> bool:
        return True

    def trainer_fixed(self) -> dict[str, Any]:
        """TRL config fields this job's own keys and its method set (so they are refused under training_args)."""
        return RL_METHODS[self.rl].kwargs(self.model_dump())
