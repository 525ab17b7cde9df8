"""An incremental rerun equals a clean run, the property every build system promises: after each kind of change
(a data file, a parent stage's settings, a stage's own settings, a module the jobs import), `snakemake` in the
folder that already holds the old results gives byte for byte the models and evaluations that a run from scratch
with the same inputs gives in another folder. (CPU runs of the tiny model are deterministic.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import Dag, tiny_config

pytestmark = pytest.mark.slow

ROW = {"tagged": {"stages": ["prep_sft", "full_sft"]}}  # one row: prep SFT, full SFT from it


def rerun_dag(root: Path, model: Path, data: Path) -> Dag:
    """The row at its smallest: 8 + 4 steps with checkpoints, greedy evaluation; its data beside it, named
    relatively, so that a copy of the folder is a self-contained copy of the run."""
    config = tiny_config(model, data)
    config["data"].update(train_file="data/train.jsonl", test_file="data/test.jsonl")
    config["stages"]["prep_sft"]["training_args"].update(max_steps=8, save_steps=4)
    config["stages"]["full_sft"]["training_args"].update(max_steps=4, save_steps=2)
    config["evaluation"].update(samples=0, kl_to_base=False)
    config["confidence"]["model"] = "base"
    dag = Dag(root, config)
    shutil.copytree(data, root / "data")
    defaults = yaml.safe_load((root / "config.yaml").read_text())
    defaults["experiments"] = ROW
    (root / "config.yaml").write_text(yaml.safe_dump(defaults))
    return dag


def change_data(dag: Dag) -> None:
    """Two training rows of the user's file edited: prepare_data rewrites the splits; no chain changes."""
    path = dag.root / "data/train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows[:2]:
        row["question"] = row["question"].replace("What is", "Compute")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def change_code(dag: Dag) -> None:
    """The answer format's instruction reworded in the workflow's code: every prompt changes, no chain does."""
    path = dag.root / "workflow/gsm_pipeline/grading/formats.py"
    path.write_text(path.read_text().replace("Solve the math problem. Write", "Solve this math problem. Write"))


def setting(stage: str):
    def change(dag: Dag) -> None:
        path = dag.root / "tiny.yaml"
        config = yaml.safe_load(path.read_text())
        config["stages"][stage]["training_args"]["learning_rate"] = 3.0e-3
        path.write_text(yaml.safe_dump(config))
    change.__name__ = f"change_{stage}"
    return change


CHANGES = {"data file": change_data, "code module": change_code, "parent's settings": setting("prep_sft"),
           "stage's own settings": setting("full_sft")}


def target(dag: Dag) -> tuple[str, str, str]:
    """(prep SFT's folder, full SFT's folder, full SFT's evaluation) as this folder's config names them."""
    import os

    here = os.getcwd()
    os.chdir(dag.root)  # the config names its data relative to the folder it runs in
    try:
        prep, full = dag.run("tagged", "prep_sft"), dag.run("tagged", "full_sft")
    finally:
        os.chdir(here)
    return prep, full, f"results/{full}/eval/tagged-chat/test"


def outcome(dag: Dag) -> dict[str, bytes]:
    """What the run produced, byte for byte: both models' weights and the evaluation's graded completions."""
    prep, full, evaluation = target(dag)
    metrics = json.loads((dag.root / evaluation / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if k.startswith(("accuracy", "answer_rate", "n"))}
    return {"prep_sft": (dag.root / f"results/{prep}/model/model.safetensors").read_bytes(),
            "full_sft": (dag.root / f"results/{full}/model/model.safetensors").read_bytes(),
            "predictions": (dag.root / evaluation / "predictions.jsonl").read_bytes(),
            "metrics": json.dumps(numbers, sort_keys=True).encode()}


def build(dag: Dag) -> dict[str, bytes]:
    dag.snakemake(f"{target(dag)[2]}/metrics.json")
    return outcome(dag)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model, tiny_data) -> tuple[Dag, dict[str, bytes]]:
    dag = rerun_dag(tmp_path_factory.mktemp("rerun") / "first", tiny_model, tiny_data)
    return dag, build(dag)


@pytest.mark.parametrize("kind", list(CHANGES))
def test_an_incremental_rerun_after_a_change_equals_a_clean_run(finished, tmp_path, tiny_model, tiny_data, kind):
    first, before = finished
    incremental = first.copy(tmp_path / "incremental")
    assert "Nothing to be done" in incremental.snakemake("-n", f"{target(incremental)[2]}/metrics.json").stdout
    CHANGES[kind](incremental)
    after = build(incremental)

    clean = rerun_dag(tmp_path / "clean", tiny_model, tiny_data)
    CHANGES[kind](clean)
    expected = build(clean)
    assert [part for part in expected if after[part] != expected[part]] == []
    assert after["full_sft"] != before["full_sft"]  # the change reached the model: the comparison means something


def test_turning_on_logging_or_changing_the_save_cadence_plans_no_job(finished, tmp_path):
    """Settings that change how a run is logged, saved or named, not its weights, keep every folder and plan
    nothing in a finished run: turning on TensorBoard or W&B does not train again."""
    first, _ = finished
    again = first.copy(tmp_path / "again")
    config = yaml.safe_load((again.root / "tiny.yaml").read_text())
    for stage in ("prep_sft", "full_sft"):
        config["stages"][stage]["training_args"].update(report_to="tensorboard", logging_steps=5, save_steps=2,
                                                        run_name="mine")
    (again.root / "tiny.yaml").write_text(yaml.safe_dump(config))
    assert "Nothing to be done" in again.snakemake("-n", f"{target(again)[2]}/metrics.json").stdout
