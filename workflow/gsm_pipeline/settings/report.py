"""What the report reads besides the evaluations' files: the matrix's layout and the run's provenance."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import JobSettings


class ReportJob(JobSettings):
    experiments: list[dict[str, Any]] = Field(
        description="Per experiment in declaration order: name, evaluations (stage, run, prompt, parent run), "
                    "test sets, variant values, swept values, training prompt key")
    provenance: dict[str, Any] = Field(description="Seed and config hash of the run")
