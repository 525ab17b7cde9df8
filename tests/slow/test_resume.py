"""Kill-and-resume: a training stage SIGKILLed mid-run resumes from its newest complete
checkpoint and ends exactly where an uninterrupted run with the same seed ends; and a killed Snakemake, rerun
as the README says, resumes its stage the same way."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, arithmetic_rows, resumable_dag, resumed_from, wait_for, write_jsonl
from gsm_pipeline.config import validate_config

pytestmark = pytest.mark.slow


def stage_command(tmp_path: Path, parent: Path, stage: str, name: str) -> list[str]:
    """A real training job of `stage` on the tiny model: 24 SFT steps or 8 GRPO steps, checkpoints every 4 / 2."""
    if stage == "rl":
        cfg = validate_config({"stages": {"rl": {"num_generations": 4, "max_completion_length": 32,
                               "training_args": {"max_steps": 8, "per_device_train_batch_size": 4,
                                                 "learning_rate": 1e-3, "save_steps": 2, "save_total_limit": 3}}}})
        job, module = cfg.stage_job("tagged", "rl"), "gsm_pipeline.jobs.train_rl"
    else:
        cfg = validate_config({"stages": {"prep_sft": {"max_length": 256, "training_args": {
            "max_steps": 24, "per_device_train_batch_size": 4, "learning_rate": 3e-3, "save_steps": 4,
            "save_total_limit": 3}}}})
        job, module = cfg.stage_job("tagged", "prep_sft"), "gsm_pipeline.jobs.train_sft"
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(64, seed=5))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    run = tmp_path / name
    return [sys.executable, "-m", module, "--config", job.as_json(), "--parent", str(parent), "--data", str(data),
            "--out", str(run / "model"), "--checkpoints", str(run / "checkpoints"),
            "--log-history", str(run / "log.json"), "--threads", "1"]


def run(cmd, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def logged(folder: Path) -> list[tuple]:
    """Per-step loss (and, for GRPO, reward) as the trainer logged them."""
    return [(h["step"], h["loss"], h.get("reward")) for h in json.loads((folder / "log.json").read_text())
            if "loss" in h]


@pytest.mark.parametrize("stage, kill_after", [("prep_sft", 12), ("rl", 4)])
def test_sigkill_mid_training_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_dag, stage, kill_after):
    from safetensors.torch import load_file

    # GRPO starts from the tiny DAG's prep model, which writes the format, so its rewards vary.
    parent = tiny_dag.root / (f"results/{tiny_dag.run('tagged', 'prep_sft')}/model" if stage == "rl"
                              else "resources/model")
    reference = run(stage_command(tmp_path, parent, stage, "reference"))
    assert reference.wait(timeout=600) == 0, reference.stdout.read()[-3000:]

    cmd = stage_command(tmp_path, parent, stage, "killed")
    victim = run(cmd)
    wait_for(tmp_path / "killed" / "checkpoints" / f"checkpoint-{kill_after}" / "trainer_state.json", victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "model").exists()  # no model output from a killed stage

    resumed = run(cmd)
    out = resumed.stdout.read()
    assert resumed.wait(timeout=600) == 0, out[-3000:]
    assert resumed_from(out) >= kill_after

    mine, ref = logged(tmp_path / "killed"), logged(tmp_path / "reference")
    assert [m[0] for m in mine] == [r[0] for r in ref]
    # losses to 1e-6; rewards (GRPO logs one per step, SFT none) the same way where logged, absent where not
    assert [m[1] for m in mine] == pytest.approx([r[1] for r in ref], abs=1e-6)
    assert [m[2] is None for m in mine] == [r[2] is None for r in ref]
    assert [m[2] for m in mine if m[2] is not None] == pytest.approx([r[2] for r in ref if r[2] is not None],
                                                                     abs=1e-6)
    if stage == "rl":
        assert any(r[2] for r in ref), "GRPO saw no reward at all: the comparison would be vacuous"
    mine_w = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    ref_w = load_file(str(tmp_path / "reference" / "model" / "model.safetensors"))
    assert mine_w.keys() == ref_w.keys()
    for key in ref_w:
        assert (mine_w[key] - ref_w[key]).abs().max().item() <= 1e-6, key


def test_a_killed_snakemake_is_rerun_with_rerun_incomplete_and_its_stage_resumes(tmp_path, tiny_model, tiny_data):
    """README's recovery after a lost terminal: SIGKILL Snakemake and its jobs mid-stage, `--unlock`, then
    `--rerun-incomplete`: the stage resumes from its checkpoint (which Snakemake must not have deleted with the
    incomplete outputs) and finishes; nothing the killed run had finished is rebuilt."""
    dag, stage = resumable_dag(tmp_path / "dag", tiny_model, tiny_data)
    target = f"results/{stage}/model"
    victim = dag.start(target)
    wait_for(dag.root / f"results/{stage}/checkpoints/checkpoint-20/trainer_state.json", victim)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    finished = {p: p.stat().st_mtime_ns for p in (dag.root / "results/data").glob("*.jsonl")}
    assert finished, "the data jobs had not finished before the kill"

    refused = dag.snakemake(target, check=False)  # a plain rerun stops, naming the stale lock or the incomplete stage
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and ("--unlock" in said or "--rerun-incomplete" in said), said[-2000:]
    dag.snakemake(target, "--unlock")
    assert dag.planned_jobs("tiny.yaml", target, "--rerun-incomplete") == {"prep_sft": 1}
    dag.snakemake(target, "--rerun-incomplete")

    assert resumed_from((dag.root / f"results/logs/{stage}.log").read_text()) >= 20
    history = json.loads((dag.root / f"results/{stage}/log_history.json").read_text())
    assert max(h["step"] for h in history if "loss" in h) == 60
    assert (dag.root / target / "model.safetensors").is_file()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
