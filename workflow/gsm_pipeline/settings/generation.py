"""The one generation-engine setting and what `auto` means on a device: read by evaluation, confidence targets and
the RL stage's rollouts. Kept apart from both so that neither job's code includes the other's (a job's code is
what it imports, and Snakemake replans a job when its code changes)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Strict


class GenerationConfig(Strict):
    """How every completion is generated: evaluation, its samples, confidence targets and RL rollouts."""
    engine: Literal["auto", "loop", "continuous"] = Field(
        "auto", description="loop: length-sorted batches through a KV-cache loop that drops ended rows (RL rollouts: "
                            "TRL's own model.generate); continuous: transformers' continuous batching with a paged KV "
                            "cache (generate_batch; RL: TRL's use_transformers_continuous_batching); auto: the loop on "
                            "a CPU, where continuous batching measured 2.4x slower greedy (tests/bench/README.md), "
                            "continuous batching on a GPU")

# Refused by the RL job's settings (at validation) and again by its entry point (a job built by hand).
CONTINUOUS_UNDER_AUTOCAST = (
    "generation.engine: continuous cannot roll out the RL stage under mixed precision (TRL 1.16's continuous "
    "batching fails under accelerate's autocast wrapper): set model.mixed_precision: \"no\" (the stage then trains "
    "and rolls out in fp32, and saves model.dtype) or generation.engine: auto")


def resolve_engine(engine: str, device) -> tuple[str, str]:
    """(engine, why): what `auto` means on this device, measured (tests/bench/README.md, bench_generation.py)."""
    if engine != "auto":
        return engine, "asked for"
    if getattr(device, "type", str(device)) == "cuda":
        return "continuous", "auto: continuous batching on a GPU, where a per-token Python loop is launch-bound"
    return "loop", "auto: the loop on a CPU (continuous batching measured 2.4x slower greedy, 4.1x sampled)"
