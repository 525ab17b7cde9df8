"""What the report reads besides the evaluations' files: the matrix's layout and the run's provenance."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import JobSettings, Strict


class Evaluation(Strict):
    """One model of a row asked in one prompt, with the models it is compared against."""
    stage: str = Field(description="base, or the stage that trained the model")
    run: str = Field(description="base or <stage>-<chain>: the model's folder under results/")
    prompt: str = Field(description="The prompt key it is asked in")
    prompt_without_template: str = Field(description="The key of the same prompt without the chat template")
    parent_run: str = Field(description="The model its stage started from (base for base)")


class CurvePoint(Strict):
    """A model a stage's training kept at one optimizer step, evaluated in the prompt the row trains with."""
    stage: str
    step: int = Field(ge=1)
    run: str = Field(description="<stage>-<chain>/step-<step>")
    stage_run: str = Field(description="The stage's folder")
    prompt: str


class StageRun(Strict):
    """A stage of a row: its folder, the folder it starts from and its GPUs (the compute axis charges them)."""
    stage: str
    run: str
    parent_run: str
    gpus: int = Field(ge=0)


class ExperimentLayout(Strict):
    """One row of the matrix as the report lays it out."""
    name: str
    evaluations: list[Evaluation]
    testsets: list[str]
    variant: dict[str, Any] = Field(description="The row's settings that become comparison columns")
    swept: dict[str, Any] = Field(description="The values a sweep set for this row")
    prompt_key: str = Field(description="The prompt the row trains with")
    curve: list[CurvePoint]
    stages: list[StageRun]


class ReportJob(JobSettings):
    experiments: list[ExperimentLayout] = Field(description="The matrix's rows in declaration order")
    provenance: dict[str, Any] = Field(description="Seed and config hash of the run")
    battery: list[str] = Field(default_factory=list, description="Test sets of tasks no stage trains on "
                                                                 "(data.battery): the forgetting section's")
