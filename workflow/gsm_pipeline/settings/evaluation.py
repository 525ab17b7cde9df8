"""What evaluate and confidence_targets read: their config sections, and the jobs built from them."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import SEED_MAX, JobSettings, Numerics, Strict
from .generation import GenerationConfig
from .prompt import PromptSpec


class EvalSettings(Strict):
    gpus: int = Field(0, ge=0, description="GPUs per evaluation (and confidence-targets) job: the Slurm request")
    max_new_tokens: int = Field(256, ge=1, description="Generation budget per test problem")
    batch_size: int = Field(16, ge=1, description="Problems generated together")
    samples: int = Field(0, ge=0, le=64, description="Sampled completions per problem besides greedy (0: greedy only) "
                                                     "at the base's and each stage's final evaluation; a row's "
                                                     "eval_samples overrides it for its stages")
    sample_temperature: float = Field(0.7, gt=0, description="Temperature of the sampled completions")
    reward_model: str | None = Field(
        None, description="Folder of a sequence-classification reward model ranking samples for best-of-n "
                          "(default: the policy's mean token log-probability)")
    lm_eval_graders: bool | Literal["auto"] = Field(
        "auto", description="Also grade every completion with lm-evaluation-harness's gsm8k filters and metric (its "
                            "columns beside ours): auto where lm-eval (the lm-eval extra) is installed")
    kl_to_base: bool = Field(True, description="Also measure each trained model's KL(model || base) on its greedy "
                                               "completions and KL(base || model) on the base model's own samples "
                                               "(one per problem, drawn once by the base's evaluation), which "
                                               "predicts forgetting: about one more greedy evaluation's time")


class EvalConfig(EvalSettings):
    """The evaluation section: a reward model folder that is not one fails at validation, before any job."""

    curve_samples: int | None = Field(
        None, ge=0, le=64, description="Sampled completions per problem at learning-curve points (default: as at "
                                       "their stage's final evaluation; 0: greedy only, which the curves read)")

    @field_validator("lm_eval_graders")
    @classmethod
    def _installed(cls, v: bool | str) -> bool | str:
        from ..grading.protocols import version

        if v is True and version() is None:
            raise ValueError("true needs lm-eval: pip install 'gsm-pipeline[lm-eval]' (or auto: where installed)")
        return v

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


class EvalJob(EvalSettings, GenerationConfig, Numerics, JobSettings):
    prompt: PromptSpec = Field(description="The prompt the model is asked with")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the sampled completions")


class TargetsJob(ConfidenceConfig, GenerationConfig, Numerics, JobSettings):
    prompt: PromptSpec = Field(description="The prompt the measured model answers in")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Sampling seed")
