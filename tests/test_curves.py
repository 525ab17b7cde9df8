"""Learning curves and the compute axis (issue 18): `stages.<stage>.eval_checkpoints` keeps the model at chosen
optimizer steps, evaluates each as an ordinary DAG job, and the report puts every point on one compute axis."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

from conftest import Dag, benchmark_row, tiny_config
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.layout import runs
from gsm_pipeline.training.curve import keep

pytestmark = pytest.mark.dag

# One row, prep SFT (120 steps) then GRPO (3 steps) from it: a point every 60 SFT steps and at GRPO step 2.
CURVE_ROW = {"curve": {"stages": ["prep_sft", "grpo"],
                       "overrides": {"prep_sft": {"eval_checkpoints": 60}, "grpo": {"eval_checkpoints": [2]}}}}


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
    assert planned == {"prepare_data": 1, "fetch_model": 1, "prep_sft": 1, "grpo": 1, "evaluate": 5,
                       "report": 1, "all": 1}
    assert "Nothing to be done" in dag.snakemake("-n").stdout  # after the run, no curve job replans


def test_sft_and_grpo_intermediate_models_are_kept_evaluated_and_on_the_curve(planned_and_run):
    from safetensors.torch import load_file

    dag, _ = planned_and_run
    prep, grpo = dag.run("curve", "prep_sft"), dag.run("curve", "grpo")
    # kept on purpose: SFT's resume checkpoint of step 60 is gone (save_total_limit 2 kept 100 and 120)
    assert not (dag.root / "results" / prep / "checkpoints/checkpoint-60").exists()
    assert [p.name for p in (dag.root / "results" / prep).glob("step-*")] == ["step-60"]  # only the listed steps
    for run, step in ((prep, 60), (grpo, 2)):
        kept = dag.root / "results" / run / f"step-{step}" / "model"
        weights, final = load_file(kept / "model.safetensors"), load_file(dag.root / "results" / run / "model" /
                                                                          "model.safetensors")
        assert any(not weights[k].equal(final[k]) for k in final), f"{run} step {step} is the final model"
        assert (dag.root / "results" / run / f"step-{step}/eval/tagged-chat/test/metrics.json").exists()
    points = table(dag.root / "results/report/curve.csv")
    assert [(p["stage"], p["stage_step"], p["final"]) for p in points] == [
        ("base", "0", "True"), ("prep_sft", "60", "False"), ("prep_sft", "120", "True"), ("grpo", "2", "False"),
        ("grpo", "3", "True")]


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
    prep, grpo_run = dag.run("curve", "prep_sft"), dag.run("curve", "grpo")
    logs = {run: json.loads((dag.root / "results" / run / "log_history.json").read_text()) for run in (prep, grpo_run)}
    n = logs[grpo_run][0]["runtime"]["parameters"]
    assert n == sum(t.numel() for t in load_file(dag.root / "results" / grpo_run / "model/model.safetensors").values())

    def tokens(run: str, upto: int) -> float:  # the trainer's running count at the last step logged by `upto`
        return [e["num_tokens"] for e in logs[run] if "loss" in e and e["step"] <= upto][-1]

    args = dag.config().stage_config("curve", "grpo")["training_args"]
    per_step = args["per_device_train_batch_size"] * args.get("gradient_accumulation_steps", 1)  # one process
    rollouts = [e["completions/mean_length"] * per_step for e in logs[grpo_run] if "loss" in e]
    expected = {("prep_sft", 60): (tokens(prep, 60), 0.0), ("prep_sft", 120): (tokens(prep, 120), 0.0),
                ("grpo", 2): (tokens(prep, 120) + tokens(grpo_run, 2), sum(rollouts[:2])),
                ("grpo", 3): (tokens(prep, 120) + tokens(grpo_run, 3), sum(rollouts))}
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
    assert costs["grpo"]["gpu_hours"] == ""  # a CPU run has no GPU-hours


def test_the_report_opens_with_accuracy_against_compute(planned_and_run):
    dag, _ = planned_and_run
    page = (dag.root / "results/report/index.html").read_text()
    first = page.index("<h2>")
    assert page[first:].startswith("<h2>Which method buys more accuracy for the same compute?</h2>")
    for image in ("curve_compute.png", "curve_steps.png"):
        assert f'src="{image}"' in page and (dag.root / "results/report" / image).stat().st_size > 10_000


def check(config: dict) -> None:
    validate_config(merge(load_config_file("config.yaml"), config))


@pytest.mark.parametrize("stage, setting, message", [
    ("full_sft", {"eval_checkpoints": 50}, "every 50 steps needs training_args.max_steps"),
    ("grpo", {"eval_checkpoints": [100, 500], "training_args": {"max_steps": 500}}, r"steps \[500\] are not before"),
    ("prep_sft", {"eval_checkpoints": [0, 2]}, "steps count from 1"),
])
def test_a_curve_that_cannot_be_drawn_is_refused_before_any_job(stage, setting, message):
    with pytest.raises(ConfigError, match=message):
        check({"stages": {stage: setting}})


def test_curves_need_full_weights():
    with pytest.raises(ConfigError, match="learning curves need finetune full"):
        check({"experiments": {"tagged": {"finetune": "lora", "overrides": {"grpo": {"eval_checkpoints": [5]}}}}})


def test_curves_are_part_of_a_stage_chain_and_off_is_the_chain_of_a_config_without_them():
    off = runs(validate_config(load_config_file("config.yaml")))
    zero = runs(validate_config(merge(load_config_file("config.yaml"), {"stages": {"grpo": {"eval_checkpoints": 0}}})))
    on = runs(validate_config(merge(load_config_file("config.yaml"), {"stages": {"grpo": {"eval_checkpoints": 5}}})))
    assert zero == off
    assert on[("tagged", "grpo")] != off[("tagged", "grpo")] and on[("tagged", "prep_sft")] == off[("tagged",
                                                                                                    "prep_sft")]


def saved_checkpoint(root, step: int):
    checkpoint = root / f"checkpoints/checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "optimizer.pt", "trainer_state.json"):
        (checkpoint / name).write_text(name)
    return checkpoint


def test_a_kept_model_appears_whole_or_not_at_all(tmp_path):
    checkpoint = saved_checkpoint(tmp_path, 4)
    target = tmp_path / "step-4/model"
    (target.parent / "model.partial").mkdir(parents=True)  # left by a kill during an earlier copy
    keep(checkpoint, target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert not (target.parent / "model.partial").exists()
    assert (target / "model.safetensors").stat().st_nlink == 2  # linked, not copied


def test_a_kill_while_keeping_a_model_leaves_no_model_folder(tmp_path, monkeypatch):
    """Killed between two files, the kept model is absent (not half a model an evaluation would load)."""
    import os

    checkpoint, linked, link = saved_checkpoint(tmp_path, 4), [], os.link

    def link_then_die(source, target):
        if linked:
            raise KeyboardInterrupt  # the job is killed while linking the second file
        linked.append(link(source, target))

    monkeypatch.setattr(os, "link", link_then_die)
    with pytest.raises(KeyboardInterrupt):
        keep(checkpoint, tmp_path / "step-4/model")
    assert not (tmp_path / "step-4/model").exists()


def test_a_resumed_stage_first_keeps_the_steps_saved_before_a_kill(tmp_path):
    """A kill after the trainer saved a kept step's checkpoint but before it was linked: the resumed run links
    it at train begin, since that step will not be saved again."""
    from transformers import TrainerState

    from gsm_pipeline.training.curve import keep_steps_callback

    saved_checkpoint(tmp_path, 4)
    callback = keep_steps_callback([4, 8], tmp_path, tmp_path / "checkpoints", "prep_sft")
    callback.on_train_begin(None, TrainerState(max_steps=10), None)
    assert sorted(p.name for p in (tmp_path / "step-4/model").iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json"]
    assert not (tmp_path / "step-8").exists()  # not saved yet: training will keep it when it gets there


def test_a_gpu_stage_is_charged_its_gpus_times_its_wall_time(tmp_path):
    from gsm_pipeline.reporting.compute import at_step, stage_cost

    (tmp_path / "sft-1.tsv").write_text("s\th:m:s\tmax_rss\n1800.0\t0:30:00\t2048.0\n")
    history = [{"runtime": {"parameters": 10, "peak_gpu_memory_gb": 3.5}},
               {"step": 5, "loss": 1.0, "num_tokens": 100.0}, {"step": 10, "loss": 0.5, "num_tokens": 200.0}]
    cost = stage_cost("sft-1", history, tmp_path, gpus=4)
    assert (cost["wall_s"], cost["gpu_hours"], cost["peak_rss_gb"], cost["peak_gpu_memory_gb"]) == (1800.0, 2.0, 2.0,
                                                                                                       3.5)
    assert at_step(cost, 5) == {"steps": 5, "trained_tokens": 100.0, "generated_tokens": 0.0, "flops": 6000.0,
                                "wall_s": 900.0}


def test_the_headline_plot_draws_each_row_as_a_tree_from_a_dashed_base_line():
    """Full SFT and GRPO both branch from prep SFT's end (neither follows the other, whatever their compute), and
    the base model is a dashed horizontal reference in both panels."""
    from gsm_pipeline.reporting.plots import compute_figure

    def point(stage, run, stage_run, parent, step, flops, accuracy, answer, final=True):
        return {"experiment": "pair", "stage": stage, "run": run, "stage_run": stage_run, "parent_run": parent,
                "stage_step": step, "final": final, "testset": "test", "flops": flops, "optimizer_steps": step,
                "accuracy_strict": accuracy, "ci95_low": accuracy / 2, "ci95_high": accuracy + 0.1,
                "answer_rate": answer, "answer_ci95_low": answer / 2, "answer_ci95_high": answer + 0.1}

    points = [point("base", "base", "base", None, 0, 0.0, 0.05, 0.10),
              point("prep_sft", "prep/step-60", "prep", "base", 60, 6.0, 0.20, 0.50, final=False),
              point("prep_sft", "prep", "prep", "base", 120, 12.0, 0.30, 0.80),
              point("full_sft", "full", "full", "prep", 200, 40.0, 0.35, 0.85),
              point("grpo", "grpo", "grpo", "prep", 130, 20.0, 0.40, 0.90)]
    figure = compute_figure(points, "flops")
    for ax, base in zip(figure.axes, (0.05, 0.10)):
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {base}
        drawn = sorted(list(line.get_xdata()) for line in ax.get_lines()
                       if line.get_linestyle() == "-" and len(line.get_xdata()) > 1)
        assert drawn == [[0.0, 6.0, 12.0], [12.0, 20.0], [12.0, 40.0]]  # base->prep, prep->grpo, prep->full
