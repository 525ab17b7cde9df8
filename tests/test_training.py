"""Training entry points: LoRA merged into a plain model, pass-through trainer arguments
checked by name, and checkpoints that resume only the run they belong to."""
import json

import pytest

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.jobs import train_sft
from gsm_pipeline.settings.training import RLJob, SFTJob
from gsm_pipeline.training.checkpoints import STAMP, newest_checkpoint, reset_stale_checkpoints
from gsm_pipeline.training.stage import trainer_arguments


def sft_rows(tmp_path):
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(8, seed=4))]
    return write_jsonl(tmp_path / "rows.jsonl", rows)


def run_sft(tmp_path, tiny_model, learning_rate=1e-2, folder="", **experiment):
    """The real SFT entry point, 2 steps with a checkpoint after each, in `tmp_path / folder`."""
    cfg = validate_config({"experiments": {"x": experiment}, "stages": {"prep_sft": {
        "max_length": 256, "training_args": {"max_steps": 2, "per_device_train_batch_size": 4,
                                             "learning_rate": learning_rate, "save_steps": 1}}}})
    run = tmp_path / folder
    out = run / "model"
    train_sft.main(["--config", cfg.stage_job("x", "prep_sft").as_json(), "--parent", str(tiny_model),
                    "--data", str(sft_rows(tmp_path)), "--out", str(out), "--checkpoints", str(run / "ckpt"),
                    "--log-history", str(run / "log.json")])
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


def stamp_of(job, **changes):
    """A run's stamp as run_stage builds it, with some parts changed."""
    return {"job": job.stamp(), "inputs": {"parent": [["model.safetensors", 10, 1]], "data": "abc"}, "code": "c0de",
            "resolved": {"device": "cpu", "autocast": None, "processes": 1, "engine": "loop"}, **changes}


def prepare_checkpoints(folder, stamp):
    """What run_stage does before training: drop another run's checkpoints, then pick the newest complete one."""
    reset_stale_checkpoints(folder, stamp)
    return newest_checkpoint(folder)


def test_resume_takes_the_newest_complete_checkpoint_of_the_same_run(tmp_path):
    folder, job = tmp_path / "ckpt", RLJob(seed=0, prompt={}, rewards=["format"])
    assert prepare_checkpoints(folder, stamp_of(job)) is None
    fake_checkpoint(folder, 4)
    fake_checkpoint(folder, 12)
    fake_checkpoint(folder, 16, complete=False)  # killed before the state was written
    corrupt = fake_checkpoint(folder, 20)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])  # killed while writing the weights
    assert prepare_checkpoints(folder, stamp_of(job)) == str(folder / "checkpoint-12")
    assert prepare_checkpoints(folder, stamp_of(job.model_copy(update={"seed": 1}))) is None  # another config
    assert not (folder / "checkpoint-12").exists() and (folder / STAMP).is_file()


@pytest.mark.parametrize("part, changed", [
    ("inputs", {"parent": [["model.safetensors", 10, 2]], "data": "abc"}),  # the parent was retrained
    ("inputs", {"parent": [["model.safetensors", 10, 1]], "data": "abd"}),  # the training rows changed
    ("code", "c0dd"),  # a module the job runs was edited
    ("resolved", {"device": "cpu", "autocast": "bf16", "processes": 1, "engine": "loop"}),  # another kind of node
    ("resolved", {"device": "cpu", "autocast": None, "processes": 2, "engine": "loop"}),  # launched wider
])
def test_an_interrupted_run_is_resumed_only_by_the_same_run(tmp_path, capsys, part, changed):
    folder, job = tmp_path / "ckpt", SFTJob(stage="prep_sft", seed=0, prompt={})
    prepare_checkpoints(folder, stamp_of(job))
    fake_checkpoint(folder, 4)
    assert prepare_checkpoints(folder, stamp_of(job)) == str(folder / "checkpoint-4")  # the same run resumes
    capsys.readouterr()
    assert prepare_checkpoints(folder, stamp_of(job, **{part: changed})) is None
    assert f"checkpoints in {folder} were made by another run ({part} differ); starting from step 0" in (
        capsys.readouterr().out)
    assert not (folder / "checkpoint-4").exists()


def test_the_stamp_changes_with_the_parent_the_rows_and_the_code_the_job_runs(tmp_path, tiny_model, monkeypatch):
    import shutil

    from gsm_pipeline import sources
    from gsm_pipeline.training.checkpoints import run_stamp

    job = SFTJob(stage="prep_sft", seed=0, prompt={})
    parent, data = shutil.copytree(tiny_model, tmp_path / "parent"), sft_rows(tmp_path)
    first = run_stamp(job, {"parent": str(parent), "data": str(data)})
    assert run_stamp(job, {"parent": str(parent), "data": str(data)}) == first  # the same run, the same stamp
    perturbed_copy(tiny_model, tmp_path / "retrained")
    shutil.copy(tmp_path / "retrained" / "model.safetensors", parent / "model.safetensors")
    retrained = run_stamp(job, {"parent": str(parent), "data": str(data)})
    assert retrained["inputs"]["parent"] != first["inputs"]["parent"]
    data.write_text(data.read_text().replace("What is", "What's"))
    assert run_stamp(job, {"parent": str(parent), "data": str(data)})["inputs"]["data"] != first["inputs"]["data"]

    folder = tmp_path / "ckpt"  # the same run, restarted after a kill, resumes its checkpoint
    reset_stale_checkpoints(folder, retrained)
    fake_checkpoint(folder, 3)
    assert prepare_checkpoints(folder, run_stamp(job, {"parent": str(parent), "data": str(data)})) is None  # rows
    reset_stale_checkpoints(folder, retrained)
    fake_checkpoint(folder, 3)
    assert prepare_checkpoints(folder, retrained) == str(folder / "checkpoint-3")

    package = shutil.copytree(sources.PACKAGE_DIR, tmp_path / "gsm_pipeline")  # edit a copy of the code
    monkeypatch.setattr(sources, "PACKAGE_DIR", package)
    sources._local_imports.cache_clear()
    before = sources.code_stamp("jobs.train_sft")
    assert sources.code_stamp("jobs.train_rl") != before
    prompts = package / "prompts.py"  # a module the SFT job imports
    prompts.write_text(prompts.read_text() + "\n# edited\n")
    assert sources.code_stamp("jobs.train_sft") != before
    sources._local_imports.cache_clear()


def perturbed_copy(model, out):
    """The same model folder with every weight nudged: a retrained parent."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(model, out)
    weights = load_file(str(out / "model.safetensors"))
    save_file({k: v + 1e-3 for k, v in weights.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_a_finished_stage_keeps_no_checkpoint_and_its_rerun_equals_a_clean_run(tmp_path, tiny_model, capsys):
    """A stage that reruns with unchanged settings (its parent retrained, its data or code changed, --forcerun)
    trains from step 0: the weights equal a clean run's with the same inputs, never the finished run's."""
    import shutil

    first = run_sft(tmp_path, tiny_model)
    assert not (tmp_path / "ckpt").exists()  # checkpoints only ever resume an unfinished run
    before = (first / "model.safetensors").read_bytes()
    parent = perturbed_copy(tiny_model, tmp_path / "retrained")
    shutil.rmtree(first)  # as Snakemake does before it reruns a job
    capsys.readouterr()
    rerun = run_sft(tmp_path, parent)
    assert "resuming from" not in capsys.readouterr().out
    clean = run_sft(tmp_path, parent, folder="clean")
    assert (rerun / "model.safetensors").read_bytes() == (clean / "model.safetensors").read_bytes() != before
    history = json.loads((tmp_path / "log.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2]  # both steps trained again


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
        train_sft.main(["--config", cfg.stage_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
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
        train_sft.main(["--config", cfg.stage_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
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
