"""Which checkpoint a training run may resume: only one made by the same run.

Checkpoints live in a stage-local folder beside (never inside) the model output, so Snakemake's cleanup of an
incomplete `directory()` output never deletes them. They exist only to finish an interrupted run: the folder is
stamped with everything that determines the weights (the job's settings, the parent's weights, the training rows,
the job's code, the resolved device, autocast, rollout engine and process count), so a run resumes only what the
same run started; and once the final model is saved the folder is removed. A rerun of a finished stage (its
parent, data or code changed, or `--forcerun`) therefore trains from step 0, as a clean run would.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..hashing import config_hash
from ..model_io import weights_stamp
from ..runtime import job_precision, on_gpu
from ..settings.generation import resolve_engine
from ..settings.training import TrainingJob
from ..sources import code_stamp
from ..stages import STAGES, by_method
from .arguments import rollout_engine

STAMP = "job_config.json"


def is_complete_checkpoint(path: Path) -> bool:
    """A checkpoint counts only when the trainer finished writing it: its state parses and every
    safetensors file opens (a kill during the write leaves a truncated file)."""
    from safetensors import safe_open

    state = path / "trainer_state.json"
    weights = sorted(path.glob("*.safetensors"))
    if not state.is_file() or not weights:
        return False
    try:
        json.loads(state.read_text())
        for file in weights:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
    except Exception:  # any parse or read failure means: not a checkpoint to resume from
        return False
    return True


def input_stamp(path: str | Path) -> Any:
    """A model folder by its files (name, size, mtime: a retrained parent differs), a rows file by its content."""
    path = Path(path)
    return weights_stamp(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def resolved(job: TrainingJob) -> dict[str, Any]:
    """How this machine runs the job, where the config leaves it open (`auto`) or the launch decides it."""
    precision, gpu = job_precision(job), on_gpu()
    out = {"device": "cuda" if gpu else "cpu", "autocast": precision.autocast,
           "processes": int(os.environ.get("WORLD_SIZE", "1"))}
    if by_method(job.stage):
        out["engine"] = rollout_engine(job, gpu=gpu, autocast=precision.autocast is not None)[0]
    elif hasattr(job, "engine"):  # a stage that samples before or while it trains
        out["engine"] = resolve_engine(job.engine, out["device"])[0]
    return out


def run_stamp(job: TrainingJob, inputs: dict[str, str | None]) -> dict[str, Any]:
    """Everything that determines a stage's weights: the checkpoint folder is resumed only under the same stamp."""
    from ..tasks import TASKS

    module = f"jobs.{STAGES[job.stage].entry.module}"
    return {"job": job.stamp(), "inputs": {k: input_stamp(v) for k, v in inputs.items() if v},
            "code": code_stamp(module, TASKS[job.prompt.task].removeprefix("gsm_pipeline.")), "resolved": resolved(job)}


def reset_stale_checkpoints(folder: Path, stamp: dict[str, Any]) -> None:
    """Checkpoints made by another run (any part of the stamp differs) are deleted, saying which part differs; the
    folder is then stamped with this run."""
    stamp = json.loads(json.dumps(stamp))  # as the file will hold it (tuples become lists)
    if folder.exists():
        old = folder / STAMP
        try:
            before = json.loads(old.read_text()).get("stamp", {}) if old.is_file() else {}
        except ValueError:  # a stamp cut short by a kill
            before = {}
        changed = [part for part in stamp if before.get(part) != stamp[part]]
        if changed:
            if any(folder.glob("checkpoint-*")):
                print(f"checkpoints in {folder} were made by another run ({', '.join(changed)} differ); "
                      "starting from step 0")
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).write_text(json.dumps({"hash": config_hash(stamp), "stamp": stamp}, indent=2))


def retire_checkpoints(folder: Path) -> None:
    """After the final model is saved, its checkpoints (and any sample journal beside them) go: they could only
    ever resume this finished run, and a rerun must train afresh. Learning-curve models are linked out of them
    and stay."""
    shutil.rmtree(folder, ignore_errors=True)


def clear_curve_models(stage_dir: Path, after: int) -> None:
    """Learning-curve models past the step training starts from were kept by an earlier run: removed, so that each
    is kept again from this run (evaluations beside them are Snakemake's to rerun)."""
    for model in stage_dir.glob("step-*/model"):
        step = model.parent.name.removeprefix("step-")
        if step.isdigit() and int(step) > after:
            shutil.rmtree(model)


def newest_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint to resume from, or None to start fresh."""
    candidates = sorted((p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                        key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for candidate in candidates:
        if is_complete_checkpoint(candidate):
            print(f"resuming from {candidate} (step {candidate.name.split('-')[-1]})")
            return str(candidate)
        print(f"skipping incomplete checkpoint {candidate}")
    return None
