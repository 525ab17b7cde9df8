"""What the on-policy distillation stage reads: its section and its job (stages.py's `distill` kind).

On-policy distillation (Agarwal et al., arXiv 2306.13649): the student samples its own completions of the training
questions and learns the teacher's next-token distribution on them, token by token: dense like SFT, on-policy like
RL, and no reward. TRL 1.16's DistillationTrainer trains it; `beta` picks the divergence (generalized JSD).
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from ..errors import ModelError
from ..model_io import check_model_source
from ..stages import STAGES
from .training import TrainingJob, TrainingStageConfig


class DistillStageConfig(TrainingStageConfig):
    # the keys below set DistillationConfig's arguments of the same name (refused under training_args)
    TRAINER_ARGS: ClassVar[dict[str, str]] = {"max_completion_length": "max_completion_length",
                                              "temperature": "temperature", "beta": "beta"}

    teacher: str = Field(
        "full_sft", description="The teacher: a stage of the same row (its trained model, e.g. full_sft) or a model "
                                "source as model.source takes it (a hub id or a local folder, fetched beside the "
                                "base model), e.g. a larger model of the same family; it must share the student's "
                                "tokenizer")
    beta: float = Field(1.0, ge=0, le=1, description="Generalized JSD interpolation: 0 forward KL(teacher || "
                                                     "student), 1 reverse KL (TRL's default), 0.5 JSD")
    max_completion_length: int = Field(192, ge=8, description="Longest sampled completion in tokens")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (also the loss's softmax temperature)")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="Any trl.DistillationConfig / TrainingArguments field, passed through")


class DistillJob(DistillStageConfig, TrainingJob):
    """The distillation stage's job: its student is the parent model, its teacher `teacher`."""
    stage: str = "distill"

    @field_validator("teacher")
    @classmethod
    def _stage_or_source(cls, v: str) -> str:
        if v not in STAGES:  # a model source: refused now, naming it, where it cannot be fetched
            if "--" in v:  # fetched into resources/teachers/<owner>--<name>, which must name one source
                raise ValueError(f"teacher: {v}: a model source has no '--'")
            try:
                check_model_source(v)
            except ModelError as exc:
                raise ValueError(f"teacher: {exc} (nor a stage: {', '.join(STAGES)})") from None
        return v

    def reads(self) -> dict[str, str]:
        return {"teacher": f"stage:{self.teacher}" if self.teacher in STAGES else f"model:{self.teacher}"}

    def generates_in_groups(self) -> bool:
        return True  # whole generation batches of one completion per prompt (TRL's RepeatSampler)

    def length_facts(self, facts: dict[str, Any] | None) -> dict[str, Any] | None:
        """DistillationTrainer generates once per optimizer step for the whole step's prompts (one completion
        each), then reuses them across its accumulation micro-batches, as GRPO does with steps_per_generation."""
        if facts is None:
            return None
        batch = facts["per_device_train_batch_size"] * self.process_count() * facts["gradient_accumulation_steps"]
        return {**facts, "generation_batch_size": batch, "num_generations": 1,
                "steps_per_generation": facts["gradient_accumulation_steps"], "num_iterations": 1}

    def trainer_fixed(self) -> dict[str, Any]:
        return {arg: getattr(self, key) for key, arg in self.TRAINER_ARGS.items()}
