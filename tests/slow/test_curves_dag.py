"""Learning curves through the DAG (issue 18), on the tiny model: one row whose prep SFT keeps step 60 and whose
GRPO keeps step 2; each kept model is an ordinary evaluation job and lands on the report's compute axis. In the
slow suite: the row trains its own DAG (about 100 s), which the fast suite's time budget cannot carry."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

from conftest import Dag, benchmark_row, tiny_config

pytestmark = pytest.mark.slow

# One row, prep SFT (120 steps) then GRPO (3 steps) from it: a point every 60 SFT steps and at GRPO step 2.
CURVE_ROW = {"curve": {"stages": ["prep_sft", "rl"],
                       "overrides": {"prep_sft": {"eval_checkpoints": 60}, "rl": {"eval_checkpoints": [2]}}}}


def curve_dag(root, model, data) -> Dag:
    config = tiny_config(model, data)
    config["confidence"]["model"] = "base"  # no row without confidence runs tagged/prep_sft here
    dag = Dag(root, config)
    defaults = yaml.safe_load((dag.root / "config.yaml").read_text())
    defaults["experiments"] = CURVE_ROW  # this row only, not config.yaml's pair
    (dag.root / "config.yaml").write_text(yaml.safe_dump(defaults))
    return dag


@pytest.fixture(scope="module")
def planned_and_run(tmp_path_factory, tiny_model, tiny_data):
    dag = curve_dag(tmp_path_factory.mktemp("curves"), tiny_model, tiny_data)
    planned = dag.planned_jobs()
    dag.snakemake()
    return dag, planned


def table(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_a_curve_point_is_one_more_evaluation_job(planned_and_run):
    dag, planned = planned_and_run
    # evaluate: base, prep SFT at step 60 and at its end (120), GRPO at step 2 and at its end (3), on the one
    # test set, in the prompt the row trains with; nothing else is added: the kept models come from training.
    assert planned == {"prepare_data": 1, "fetch_model": 1, "prep_sft": 1, "rl": 1, "evaluate": 5,
                       "report": 1, "all": 1}
    assert "Nothing to be done" in dag.snakemake("-n").stdout  # after the run, no curve job replans


def test_sft_and_grpo_intermediate_models_are_kept_evaluated_and_on_the_curve(planned_and_run):
    from safetensors.torch import load_file

    dag, _ = planned_and_run
    prep, grpo = dag.run("curve", "prep_sft"), dag.run("curve", "rl")
    # kept on purpose: the resume checkpoints are gone once the stage has saved its model
    assert not (dag.root / "results" / prep / "checkpoints").exists()
    assert [p.name for p in (dag.root / "results" / prep).glob("step-*")] == ["step-60"]  # only the listed steps
    for run, step in ((prep, 60), (grpo, 2)):
        kept = dag.root / "results" / run / f"step-{step}" / "model"
        weights, final = load_file(kept / "model.safetensors"), load_file(dag.root / "results" / run / "model" /
                                                                          "model.safetensors")
        assert any(not weights[k].equal(final[k]) for k in final), f"{run} step {step} is the final model"
        assert (dag.root / "results" / run / f"step-{step}/eval/tagged-chat/test/metrics.json").exists()
    points = table(dag.root / "results/report/curve.csv")
    assert [(p["stage"], p["stage_step"], p["final"]) for p in points] == [
        ("base", "0", "True"), ("prep_sft", "60", "False"), ("prep_sft", "120", "True"), ("rl", "2", "False"),
        ("rl", "3", "True")]


def test_a_deleted_curve_model_stops_the_dry_run_naming_the_job_that_rebuilds_it(planned_and_run):
    """Asked for again, a curve point whose kept model is gone stops the dry-run with the command that trains its
    stage again, instead of an evaluation that fails after the jobs before it."""
    dag, _ = planned_and_run
    prep = dag.run("curve", "prep_sft")
    kept = dag.root / "results" / prep / "step-60" / "model"
    aside = kept.with_name("model.aside")
    kept.rename(aside)
    try:
        done = dag.snakemake("-n", f"results/{prep}/step-60/eval/tagged-chat/test/metrics.json", check=False)
    finally:
        aside.rename(kept)
    assert done.returncode != 0
    assert (f"results/{prep}/step-60/model: this learning-curve model is missing, and only its stage's training "
            f"keeps it: train the stage again with `snakemake --cores all --forcerun prep_sft results/{prep}/model`"
            in done.stdout + done.stderr)


def test_each_point_carries_its_cumulative_compute_and_interval(planned_and_run):
    """Every point's compute is recomputed here from the two stages' own logs and benchmark files: tokens from
    the trainers' log histories (SFT's cumulative num_tokens; GRPO's mean completion length times the completions
    of a step, from the stage's settings), wall time pro-rated by steps, and both intervals from Wilson's."""
    from safetensors.torch import load_file

    from gsm_pipeline.grading.metrics import wilson_interval

    dag, _ = planned_and_run
    points = {(p["stage"], int(p["stage_step"])): p for p in table(dag.root / "results/report/curve.csv")}
    prep, grpo_run = dag.run("curve", "prep_sft"), dag.run("curve", "rl")
    logs = {run: json.loads((dag.root / "results" / run / "log_history.json").read_text()) for run in (prep, grpo_run)}
    n = logs[grpo_run][0]["runtime"]["parameters"]
    assert n == sum(t.numel() for t in load_file(dag.root / "results" / grpo_run / "model/model.safetensors").values())

    def tokens(run: str, upto: int) -> float:  # the trainer's running count at the last step logged by `upto`
        return [e["num_tokens"] for e in logs[run] if "loss" in e and e["step"] <= upto][-1]

    args = dag.config().stage_config("curve", "rl")["training_args"]
    per_step = args["per_device_train_batch_size"] * args.get("gradient_accumulation_steps", 1)  # one process
    rollouts = [e["completions/mean_length"] * per_step for e in logs[grpo_run] if "loss" in e]
    expected = {("prep_sft", 60): (tokens(prep, 60), 0.0), ("prep_sft", 120): (tokens(prep, 120), 0.0),
                ("rl", 2): (tokens(prep, 120) + tokens(grpo_run, 2), sum(rollouts[:2])),
                ("rl", 3): (tokens(prep, 120) + tokens(grpo_run, 3), sum(rollouts))}
    for key, (trained, generated) in expected.items():
        point = points[key]
        assert (float(point["trained_tokens"]), float(point["generated_tokens"])) == pytest.approx((trained, generated))
        assert float(point["flops"]) == pytest.approx(6 * n * trained + 2 * n * generated)
    # steps count from the base model: the SFT parent's 120 steps, then GRPO's 3
    assert [int(points[k]["optimizer_steps"]) for k in expected] == [60, 120, 122, 123]
    benchmarks = {run: benchmark_row(dag.root / "results/benchmarks" / f"{run}.tsv") for run in (prep, grpo_run)}
    wall = {run: float(row["s"]) for run, row in benchmarks.items()}
    assert [float(points[k]["wall_s"]) for k in expected] == pytest.approx(
        [wall[prep] / 2, wall[prep], wall[prep] + wall[grpo_run] * 2 / 3, wall[prep] + wall[grpo_run]])
    for p in points.values():  # both intervals are Wilson's on the point's counts, and the width is printed
        size = int(p["n"])
        assert (float(p["ci95_low"]), float(p["ci95_high"])) == pytest.approx(
            wilson_interval(round(float(p["accuracy_strict"]) * size), size))
        assert (float(p["answer_ci95_low"]), float(p["answer_ci95_high"])) == pytest.approx(
            wilson_interval(round(float(p["answer_rate"]) * size), size))
        assert float(p["ci95_width"]) == pytest.approx(float(p["ci95_high"]) - float(p["ci95_low"]))
    costs = {c["stage"]: c for c in table(dag.root / "results/report/cost.csv")}
    assert float(costs["prep_sft"]["wall_s"]) == wall[prep]
    assert float(costs["prep_sft"]["peak_rss_gb"]) == pytest.approx(float(benchmarks[prep]["max_rss"]) / 1024)
    assert costs["rl"]["gpu_hours"] == ""  # a CPU run has no GPU-hours


def test_the_report_opens_with_accuracy_against_compute(planned_and_run):
    dag, _ = planned_and_run
    page = (dag.root / "results/report/index.html").read_text()
    first = page.index("<h2>")
    assert page[first:].startswith("<h2>Which method buys more accuracy for the same compute?</h2>")
    for image in ("curve_compute.png", "curve_steps.png"):
        assert f'src="{image}"' in page and (dag.root / "results/report" / image).stat().st_size > 10_000
