"""Learning curves and the compute axis (issue 18): `stages.<stage>.eval_checkpoints` keeps the model at chosen
optimizer steps, evaluates each as an ordinary DAG job, and the report puts every point on one compute axis. Here:
what is refused at dry-run, keeping a model whole, the GPU charge and the headline figure; the DAG run itself is in
tests/slow/test_curves_dag.py."""
from __future__ import annotations

import pytest

from conftest import gsm_config
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.layout import runs
from gsm_pipeline.training.curve import keep


def check(config: dict) -> None:
    validate_config(merge(gsm_config(), config))


@pytest.mark.parametrize("stage, setting, message", [
    ("full_sft", {"eval_checkpoints": 50}, "every 50 steps needs training_args.max_steps"),
    ("rl", {"eval_checkpoints": [100, 500], "training_args": {"max_steps": 500}}, r"steps \[500\] are not before"),
    ("prep_sft", {"eval_checkpoints": [0, 2]}, "steps count from 1"),
])
def test_a_curve_that_cannot_be_drawn_is_refused_before_any_job(stage, setting, message):
    with pytest.raises(ConfigError, match=message):
        check({"stages": {stage: setting}})


def test_curves_need_full_weights():
    with pytest.raises(ConfigError, match="learning curves need finetune full"):
        check({"experiments": {"tagged": {"finetune": "lora", "overrides": {"rl": {"eval_checkpoints": [5]}}}}})


def test_curves_are_part_of_a_stage_chain_and_off_is_the_chain_of_a_config_without_them():
    off = runs(validate_config(gsm_config()))
    zero = runs(validate_config(merge(gsm_config(), {"stages": {"rl": {"eval_checkpoints": 0}}})))
    on = runs(validate_config(merge(gsm_config(), {"stages": {"rl": {"eval_checkpoints": 5}}})))
    assert zero == off
    assert on[("tagged", "rl")] != off[("tagged", "rl")] and on[("tagged", "prep_sft")] == off[("tagged",
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
              point("rl", "rl", "rl", "prep", 130, 20.0, 0.40, 0.90)]
    figure = compute_figure(points, "flops")
    for ax, base in zip(figure.axes, (0.05, 0.10)):
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {base}
        drawn = sorted(list(line.get_xdata()) for line in ax.get_lines()
                       if line.get_linestyle() == "-" and len(line.get_xdata()) > 1)
        assert drawn == [[0.0, 6.0, 12.0], [12.0, 20.0], [12.0, 40.0]]  # base->prep, prep->grpo, prep->full
