"""Training entry points: LoRA merged into a plain model, pass-through trainer arguments
checked by name, and checkpoints that resume only the run they belong to."""
import json

import pytest

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.jobs import train_sft
from gsm_pipeline.settings.training import GRPOJob, SFTJob
from gsm_pipeline.training.stage import STAMP, newest_checkpoint, reset_stale_checkpoints, trainer_arguments


def sft_rows(tmp_path):
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(8, seed=4))]
    return write_jsonl(tmp_path / "rows.jsonl", rows)


def run_sft(tmp_path, tiny_model, learning_rate=1e-2, **experiment):
    cfg = validate_config({"experiments": {"x": experiment}, "stages": {"prep_sft": {
        "max_length": 256, "training_args": {"max_steps": 2, "per_device_train_batch_size": 4,
                                             "learning_rate": learning_rate, "save_steps": 1}}}})
    out = tmp_path / "model"
    train_sft.main(["--config", cfg.sft_job("x", "prep_sft").as_json(), "--parent", str(tiny_model),
                    "--data", str(sft_rows(tmp_path)), "--out", str(out), "--checkpoints", str(tmp_path / "ckpt"),
                    "--log-history", str(tmp_path / "log.json")])
    return out


def test_lora_adapters_are_merged_into_a_plain_loadable_model(tmp_path, tiny_model):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = run_sft(tmp_path, tiny_model, finetune="lora")
    assert not (out / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(out)
    trained, parent = load_file(str(out / "model.safetensors")), load_file(str(tiny_model / "model.safetensors"))
    assert trained.keys() == parent.keys()  # no lora_A/lora_B left behind
    changed = [k for k in trained if not trained[k].equal(parent[k])]
    assert changed and all("proj" in k for k in changed)  # only adapted linear layers moved
    history = json.loads((tmp_path / "log.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2]


def test_unknown_or_reserved_trainer_arguments_are_named():
    from trl import SFTConfig

    job = SFTJob(stage="prep_sft", seed=0, prompt={}, training_args={"learning_rat": 1e-4})
    with pytest.raises(ConfigError, match=r"unknown key 'stages.prep_sft.training_args.learning_rat'"):
        trainer_arguments(SFTConfig, job, "out")
    job = job.model_copy(update={"training_args": {"max_length": 5}})
    with pytest.raises(ConfigError, match=r"set by the pipeline: use stages.prep_sft.max_length$"):
        trainer_arguments(SFTConfig, job, "out")


def test_any_training_arguments_field_reaches_the_trainer(tmp_path):
    from trl import SFTConfig

    job = SFTJob(stage="full_sft", seed=3, prompt={}, training_args={"weight_decay": 0.1,
                                                                     "lr_scheduler_type": "cosine", "warmup_steps": 7})
    args = trainer_arguments(SFTConfig, job, tmp_path)
    assert args.weight_decay == 0.1 and args.lr_scheduler_type == "cosine" and args.warmup_steps == 7
    assert args.seed == 3 and args.report_to == []


def fake_checkpoint(folder, step, complete=True):
    import torch
    from safetensors.torch import save_file

    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if complete:
        (ckpt / "trainer_state.json").write_text("{}")
        save_file({"w": torch.ones(4)}, str(ckpt / "model.safetensors"))
    return ckpt


def prepare_checkpoints(folder, job):
    """What run_stage does before training: drop another config's checkpoints, then pick the newest complete one."""
    reset_stale_checkpoints(folder, job)
    return newest_checkpoint(folder)


def test_resume_takes_the_newest_complete_checkpoint_of_the_same_config(tmp_path):
    folder, job = tmp_path / "ckpt", GRPOJob(seed=0, prompt={}, rewards=["format"])
    assert prepare_checkpoints(folder, job) is None
    fake_checkpoint(folder, 4)
    fake_checkpoint(folder, 12)
    fake_checkpoint(folder, 16, complete=False)  # killed before the state was written
    corrupt = fake_checkpoint(folder, 20)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])  # killed while writing the weights
    assert prepare_checkpoints(folder, job) == str(folder / "checkpoint-12")
    assert prepare_checkpoints(folder, job.model_copy(update={"seed": 1})) is None  # another config: start afresh
    assert not (folder / "checkpoint-12").exists() and (folder / STAMP).is_file()


def test_a_rerun_with_other_settings_starts_from_step_0_and_says_why(tmp_path, tiny_model, capsys):
    import shutil

    run_sft(tmp_path, tiny_model)
    first = json.loads((tmp_path / "log.json").read_text())
    shutil.rmtree(tmp_path / "model")  # as Snakemake does before it reruns a job
    capsys.readouterr()
    run_sft(tmp_path, tiny_model)  # same settings: resumes from the last checkpoint, trains no step again
    assert f"resuming from {tmp_path / 'ckpt' / 'checkpoint-2'} (step 2)" in capsys.readouterr().out

    shutil.rmtree(tmp_path / "model")
    run_sft(tmp_path, tiny_model, learning_rate=1e-3)
    out = capsys.readouterr().out
    assert f"checkpoints in {tmp_path / 'ckpt'} belong to another config; starting from step 0" in out
    assert "resuming from" not in out
    second = json.loads((tmp_path / "log.json").read_text())
    steps = [h["step"] for h in second if "loss" in h]
    assert steps == [1, 2]  # both steps trained again, under the new learning rate
    assert [h["learning_rate"] for h in second if "loss" in h] != [h["learning_rate"] for h in first if "loss" in h]


def test_a_non_finite_loss_stops_training_naming_the_step_and_keeps_the_good_checkpoint(
        tmp_path, tiny_model, monkeypatch):
    from trl import SFTTrainer

    from gsm_pipeline.errors import TrainingError

    real_loss = SFTTrainer.compute_loss

    def diverging_loss(self, *args, **kwargs):  # the loss turns NaN from the third step on
        loss = real_loss(self, *args, **kwargs)
        return loss * float("nan") if self.state.global_step >= 2 else loss

    monkeypatch.setattr(SFTTrainer, "compute_loss", diverging_loss)
    cfg = validate_config({"stages": {"prep_sft": {"max_length": 256, "training_args": {
        "max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 1}}}})
    with pytest.raises(TrainingError, match=r"loss is nan at step 3;"):
        train_sft.main(["--config", cfg.sft_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
                        "--data", str(sft_rows(tmp_path)), "--out", str(tmp_path / "model"),
                        "--checkpoints", str(tmp_path / "ckpt"), "--log-history", str(tmp_path / "log.json")])
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert not (tmp_path / "model").exists()


def test_a_full_disk_while_saving_leaves_no_half_written_model(tmp_path, tiny_model, monkeypatch):
    import errno

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gsm_pipeline.errors import ModelError
    from gsm_pipeline.model_io import save_atomically

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    out = tmp_path / "model"
    save_atomically(model, tokenizer, out)
    before = sorted(p.name for p in out.iterdir())

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_pretrained", disk_full)
    with pytest.raises(ModelError, match="saving failed \\(No space left on device\\)"):
        save_atomically(model, tokenizer, out)
    assert sorted(p.name for p in out.iterdir()) == before  # the earlier complete model is untouched
    assert not (tmp_path / "model.partial").exists()


def test_a_max_length_that_truncates_every_row_is_refused_before_training(tmp_path, tiny_model):
    from gsm_pipeline.errors import DataError

    cfg = validate_config({"stages": {"prep_sft": {"max_length": 16, "training_args": {"max_steps": 1}}}})
    with pytest.raises(DataError, match=r"rows.jsonl: every row is truncated at stages.prep_sft.max_length=16"):
        train_sft.main(["--config", cfg.sft_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
                        "--data", str(sft_rows(tmp_path)), "--out", str(tmp_path / "model"),
                        "--checkpoints", str(tmp_path / "ckpt"), "--log-history", str(tmp_path / "log.json")])
    assert not (tmp_path / "model").exists()


def test_a_full_disk_mid_checkpoint_is_named_in_one_line(monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    from gsm_pipeline.errors import run_main

    def torch_save_on_a_full_disk():
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 976885440 vs 976885332")

    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(1, 1, 4096))
    with pytest.raises(SystemExit):
        run_main(torch_save_on_a_full_disk)
    assert capsys.readouterr().err.startswith("error: no space left on device (0 MB free here) while running: ")
