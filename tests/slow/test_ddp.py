"""Data parallel training through `accelerate launch` on CPU (gloo): the same entry point as a single
process, each rank trains on its own shard, and the loss matches one process at equal global batch.
DeepSpeed runs here too, through its CPU accelerator, so the ZeRO launchers' save path is tested without a GPU."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.launch import free_port

pytestmark = pytest.mark.slow
# Relative, per step. Step 1 agrees to 1e-7; Adam then amplifies all-reduce rounding (measured: 8.8e-5 by step 4).
LOSS_TOLERANCE = 1e-3


def sft_job(per_device_batch: int, launcher: str, processes: int):
    cfg = validate_config({"stages": {"prep_sft": {
        "max_length": 256, "launcher": launcher, "processes": processes,
        "training_args": {"max_steps": 4, "per_device_train_batch_size": per_device_batch, "learning_rate": 1e-2,
                          "lr_scheduler_type": "constant", "save_steps": 100, "gradient_accumulation_steps": 1}}}})
    return cfg.stage_job("tagged", "prep_sft")


def rows_file(tmp_path: Path) -> Path:
    unique = list({r["question"]: r for r in arithmetic_rows(40, seed=7)}.values())[:16]  # distinct questions
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(unique)]
    return write_jsonl(tmp_path / "rows.jsonl", rows)


def accelerate(launcher: str, processes: int, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / f"envs/accelerate/{launcher}.yaml"), "--num_processes", str(processes),
           "--main_process_port", str(free_port()), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def train(tmp_path: Path, name: str, launcher: str, processes: int, per_device_batch: int, data: Path,
          parent: Path) -> list[float]:
    out = tmp_path / name
    accelerate(launcher, processes, "-m", "gsm_pipeline.jobs.train_sft", "--config",
               sft_job(per_device_batch, launcher, processes).as_json(), "--parent", str(parent),
               "--data", str(data), "--out", str(out / "model"), "--checkpoints", str(out / "checkpoints"),
               "--log-history", str(out / "log.json"), "--threads", "1")
    return [h["loss"] for h in json.loads((out / "log.json").read_text()) if "loss" in h]


def test_two_ranks_see_disjoint_shards_covering_the_data(tmp_path, tiny_model):
    data = rows_file(tmp_path)
    accelerate("ddp", 2, str(REPO / "tests/slow/ddp_shards.py"), sft_job(2, "ddp", 2).as_json(),
               str(tiny_model), str(data), str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    first, second = ranks[0]["rows"], ranks[1]["rows"]
    assert len(first) == len(second) == 8
    assert not set(first) & set(second)
    assert len(set(first) | set(second)) == 16


def test_ddp_loss_matches_one_process_at_equal_global_batch(tmp_path, tiny_model):
    from safetensors.torch import load_file

    data = rows_file(tmp_path)
    single = train(tmp_path, "single", "single", 1, 4, data, tiny_model)   # 1 process x 4 rows
    ddp = train(tmp_path, "ddp", "ddp", 2, 2, data, tiny_model)            # 2 processes x 2 rows
    assert len(single) == len(ddp) == 4
    for step, (a, b) in enumerate(zip(single, ddp), 1):
        assert abs(a - b) <= LOSS_TOLERANCE * abs(a), f"step {step}: single {a} vs ddp {b}"
    # Adam turns a near-zero gradient's rounding into a full +-lr step, so single elements may differ by
    # about 2 x lr; on average the two runs' weights must agree far more closely than either moved.
    w_single, w_ddp, w_start = (load_file(p) for p in (
        tmp_path / "single/model/model.safetensors", tmp_path / "ddp/model/model.safetensors",
        tiny_model / "model.safetensors"))
    apart = sum((w_single[k] - w_ddp[k]).abs().mean().item() for k in w_single)
    moved = sum((w_single[k] - w_start[k]).abs().mean().item() for k in w_single)
    assert apart < 0.05 * moved, f"weights differ by {apart} on average; training moved them by {moved}"


@pytest.mark.parametrize("launcher", ["zero2", "zero3"])
def test_deepspeed_stages_save_a_plain_model_folder_that_trained(tmp_path, tiny_model, launcher):
    """Under ZeRO-3 each rank holds a shard of every weight: the save must gather them into one ordinary
    safetensors folder that transformers loads, with every weight present and moved by training."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    losses = train(tmp_path, launcher, launcher, 2, 2, rows_file(tmp_path), tiny_model)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    folder = tmp_path / launcher / "model"
    AutoModelForCausalLM.from_pretrained(folder)
    saved, start = load_file(folder / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    assert saved.keys() == start.keys()
    for name, weight in saved.items():
        assert weight.shape == start[name].shape, name
    moved = [k for k in saved if not (saved[k].float() == start[k].float()).all()]
    assert len(moved) == len(saved), f"unchanged after training: {sorted(set(saved) - set(moved))}"
    # and it trained under DeepSpeed at that stage, as its runtime record says (not plain DDP under that name)
    ran = json.loads((tmp_path / launcher / "log.json").read_text())[0]["runtime"]
    assert (ran["distributed"], ran["zero_stage"], ran["processes"]) == ("DEEPSPEED", int(launcher[-1]), 2)


def test_rft_on_two_processes_samples_each_share_once_and_both_train_on_every_kept_sample(tmp_path, tiny_dag):
    """Each process samples its share of the questions; all of them train on the same kept samples (ranks that
    kept different numbers would train different numbers of steps and hang at the first collective)."""
    cfg = validate_config({"experiments": {"x": {"stages": ["prep_sft", "rft"]}}, "stages": {"rft": {
        "samples": 16, "keep": 2, "max_new_tokens": 40, "batch_size": 32, "launcher": "ddp", "processes": 2,
        "training_args": {"num_train_epochs": 1, "per_device_train_batch_size": 1, "save_steps": 100,
                          "gradient_accumulation_steps": 1}}}})
    prep = tiny_dag.root / "results" / tiny_dag.run("tagged", "prep_sft") / "model"
    questions = tiny_dag.root / "results/data/rl.jsonl"
    out = tmp_path / "rft"
    accelerate("ddp", 2, "-m", "gsm_pipeline.jobs.train_rft", "--config", cfg.stage_job("x", "rft").as_json(),
               "--parent", str(prep), "--data", str(questions), "--out", str(out / "model"),
               "--checkpoints", str(out / "checkpoints"), "--log-history", str(out / "log.json"), "--threads", "1")
    history = json.loads((out / "log.json").read_text())
    ran = history[0]["runtime"]
    assert ran["processes"] == 2 and ran["sampled"]["sampled"] == 16 * len(questions.read_text().splitlines())
    kept = ran["sampled"]["kept"]
    assert kept > 0
    assert max(h["step"] for h in history if "loss" in h) == math.ceil(kept / 2)  # every kept sample, split in two
