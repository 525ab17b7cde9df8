"""The generation journal: completions appended batch by batch beside a job's outputs, so a killed
evaluation (or confidence-target sampling) resumes where it stopped and ends byte-identical."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hashing import config_hash
from ..model_io import weights_stamp
from ..prompts import stop_strings
from .decoding import generate

if TYPE_CHECKING:
    from ..settings.evaluation import EvalJob, TargetsJob


class Journal:
    """Generations appended batch by batch beside the outputs, so a killed evaluation resumes where it
    stopped. Stamped with the job and data: anything else changed, and it starts over."""

    def __init__(self, folder: Path, name: str, stamp: dict[str, Any]):
        self.path, self.stamp_path = folder / f"{name}.partial.jsonl", folder / f"{name}.partial.stamp"
        self.stamp = config_hash(stamp)
        if not self.stamp_path.is_file() or self.stamp_path.read_text() != self.stamp:
            self.path.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.stamp_path.write_text(self.stamp)

    def load(self) -> dict[int, dict]:
        done = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line a kill cut short
                    break
                done[row.pop("index")] = row
        if done:
            print(f"resuming {self.path.name}: {len(done)} generations already done", file=sys.stderr)
        return done

    def append(self, indices: list[int], results: list[dict]) -> None:
        with self.path.open("a") as handle:
            handle.write("".join(json.dumps({"index": i, **r}) + "\n" for i, r in zip(indices, results)))
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.stamp_path.unlink(missing_ok=True)


def journal_stamp(job, model: str | Path, rows: list[dict[str, Any]], runtime: dict[str, Any]) -> dict[str, Any]:
    """What a generation journal resumes under: the job's settings, the model's weights, the rows, and how this
    machine generates (the resolved device, engine and autocast, not `auto`): a job resumed on another kind of
    node starts over instead of mixing two numerics in one file."""
    return {"job": job.stamp(), "model": weights_stamp(model), "rows": [r["id"] for r in rows],
            **{key: runtime.get(key) for key in ("device", "engine", "autocast")}}


def journaled_generate(model, tokenizer, prompts: list[str], job: EvalJob | TargetsJob, journal: Journal | None,
                       **kwargs) -> list[dict[str, Any]]:
    return generate(model, tokenizer, prompts, max_new_tokens=job.max_new_tokens, batch_size=job.batch_size,
                    stop_strings=stop_strings(job.prompt), seed=job.seed, engine=job.engine,
                    done=journal.load() if journal else None, on_batch=journal.append if journal else None, **kwargs)
