"""How many optimizer steps a stage takes, counted before it runs, as transformers' Trainer and TRL count them.

SFT: each process sees ceil(ceil(rows / batch) / processes) batches per epoch (accelerate shards the batches and
evens them out), or floor(floor(rows / batch) / processes) with `dataloader_drop_last`. RL (GRPO, RLOO): TRL's
RepeatSampler hands out whole generation batches of generation_batch_size / num_generations prompts and drops the
prompts left over, and each generation batch is `steps_per_generation x num_iterations` micro-batches. Either way
a step is `gradient_accumulation_steps` micro-batches (a remainder is one more step), and `max_steps`, when set,
wins. Packed SFT rows are counted only once packed, so there the count is unknown. tests/test_preflight.py holds
this against the trainers' own count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageLength:
    steps: int  # optimizer steps the stage takes (at most, where `bound`)
    per_epoch: int
    how: str  # the arithmetic, for messages and `gsm-pipeline validate`
    bound: bool = False  # its rows are known only as a maximum (a stage that trains on the samples it keeps)

    def words(self) -> str:
        return f"{'at most ' if self.bound else ''}{self.steps} optimizer steps: {self.how}"


def stage_length(facts: dict[str, Any], rows: int, processes: int, rl: bool, bound: bool = False
                 ) -> StageLength | None:
    """The stage's length from the resolved TRL config (`arguments.FACTS`), its rows (at most `rows`, where
    `bound`) and its process count."""
    if facts.get("packing"):
        return None
    batch, accumulation = facts["per_device_train_batch_size"], facts["gradient_accumulation_steps"]
    per = f"{processes} process{'' if processes == 1 else 'es'}"
    if rl:
        prompts = facts["generation_batch_size"] // facts["num_generations"]
        rounds, each = rows // prompts, facts["steps_per_generation"] * facts["num_iterations"]
        micro = rounds * each
        unit = (f"{rows} prompts / {prompts} per generation ({batch} completions per device x {per} x "
                f"{facts['steps_per_generation']} steps per generation / {facts['num_generations']} per prompt) = "
                f"{rounds} generations x {each} micro-batches")
    elif facts.get("dataloader_drop_last"):  # the short batch is dropped, then what does not fill every process
        micro = rows // batch // processes
        unit = f"{rows} rows / ({batch} per device x {per}), the remainder dropped"
    else:
        micro = math.ceil(math.ceil(rows / batch) / processes)
        unit = f"{rows} rows / ({batch} per device x {per})"
    per_epoch = max(math.ceil(micro / accumulation), 1)
    unit += f" / {accumulation} accumulation = {per_epoch} steps per epoch"
    if facts["max_steps"] > 0:
        return StageLength(facts["max_steps"], per_epoch, f"max_steps {facts['max_steps']}; {unit}")
    epochs = facts["num_train_epochs"]
    steps = math.ceil(epochs * per_epoch)
    return StageLength(steps, per_epoch, f"{unit} x {epochs:g} epochs", bound)
