"""Kill-and-resume: a training stage SIGKILLed mid-run resumes from its newest complete
checkpoint and ends exactly where an uninterrupted run with the same seed ends."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config

pytestmark = pytest.mark.slow


def sft_command(tmp_path: Path, tiny_model: Path, name: str) -> list[str]:
    cfg = validate_config({"stages": {"prep_sft": {"max_length": 256, "training_args": {
        "max_steps": 24, "per_device_train_batch_size": 4, "learning_rate": 3e-3, "save_steps": 4,
        "save_total_limit": 3}}}})
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(64, seed=5))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    run = tmp_path / name
    return [sys.executable, "-m", "gsm_pipeline.train_sft", "--config", json.dumps(cfg.sft_job("tagged", "prep_sft")),
            "--parent", str(tiny_model), "--data", str(data), "--out", str(run / "model"),
            "--checkpoints", str(run / "checkpoints"), "--log-history", str(run / "log.json"), "--threads", "1"]


def run(cmd, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def losses(folder: Path) -> list[tuple[int, float]]:
    return [(h["step"], h["loss"]) for h in json.loads((folder / "log.json").read_text()) if "loss" in h]


def test_sigkill_mid_training_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_model):
    from safetensors.torch import load_file

    reference = run(sft_command(tmp_path, tiny_model, "reference"))
    assert reference.wait(timeout=600) == 0, reference.stdout.read()[-3000:]

    cmd = sft_command(tmp_path, tiny_model, "killed")
    victim = run(cmd)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 600
    while not (checkpoints / "checkpoint-12" / "trainer_state.json").exists():
        assert victim.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "model").exists()  # no model output from a killed stage

    resumed = run(cmd)
    out = resumed.stdout.read()
    assert resumed.wait(timeout=600) == 0, out[-3000:]
    step = int(out.split("resuming from ")[1].split("(step ")[1].split(")")[0])
    assert step >= 12

    assert losses(tmp_path / "killed") == pytest.approx(losses(tmp_path / "reference"), abs=1e-6)
    mine = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    ref = load_file(str(tmp_path / "reference" / "model" / "model.safetensors"))
    assert mine.keys() == ref.keys()
    for key in ref:
        assert (mine[key] - ref[key]).abs().max().item() <= 1e-6, key
