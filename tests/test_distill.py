"""On-policy distillation, a stage kind like the others: a row adds `distill` to its stages and names a teacher (a
stage of the row, or a model source); the stage samples the RL questions from prep SFT's model and learns the
teacher's next-token distribution on its own samples through TRL's DistillationTrainer."""
from __future__ import annotations

import json

import pytest

from conftest import GSM_PRESET, tiny_config
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.layout import runs
from gsm_pipeline.preflight import preflight
from gsm_pipeline.reporting.compute import stage_cost

ROW = {"stages": ["prep_sft", "full_sft", "distill"]}
DISTILL = {"max_completion_length": 24, "training_args": {"max_steps": 2, "per_device_train_batch_size": 4,
                                                          "learning_rate": 1.0e-3, "save_steps": 1}}


def config(row=ROW, distill=None, stages=None):
    return validate_config({"experiments": {"x": row},
                            "stages": {"distill": {**DISTILL, **(distill or {})}, **(stages or {})}})


def test_the_teacher_is_an_input_of_the_stage_and_part_of_its_chain():
    cfg = config()
    planned = {p.stage: p for p in preflight(cfg)}
    assert planned["distill"].reads == {"teacher": f"results/{runs(cfg)[('x', 'full_sft')]}/model"}
    assert planned["distill"].parent_model == f"results/{runs(cfg)[('x', 'prep_sft')]}/model"
    # a teacher trained otherwise is another teacher: the distilled model moves to a new folder
    other = config(stages={"full_sft": {"training_args": {"learning_rate": 1.0e-4}}})
    assert runs(other)[("x", "distill")] != runs(cfg)[("x", "distill")]
    assert runs(other)[("x", "prep_sft")] == runs(cfg)[("x", "prep_sft")]


def test_a_teacher_given_by_hub_id_is_fetched_beside_the_base_model():
    cfg = config({"stages": ["prep_sft", "distill"]}, {"teacher": "Qwen/Qwen2.5-1.5B-Instruct"})
    planned = {p.stage: p for p in preflight(cfg)}
    assert planned["distill"].reads == {"teacher": "resources/teachers/Qwen--Qwen2.5-1.5B-Instruct"}


@pytest.mark.parametrize("row, distill, message", [
    ({"stages": ["prep_sft", "distill"]}, {}, "experiments.x.stages: distill needs full_sft (its teacher)"),
    ({"stages": ["prep_sft", "distill"]}, {"teacher": "distill"}, "experiments.x: distill would need itself"),
    ({"stages": ["prep_sft", "distill"]}, {"teacher": "./no/such/model"},
     "(distill): teacher: ./no/such/model: model folder not found"),
    ({"stages": ["prep_sft", "distill"]}, {"teacher": "org/a--b"}, "teacher: org/a--b: a model source has no '--'"),
    (ROW, {"training_args": {"beta": 0.5}}, "key 'stages.distill.training_args.beta' is set by the pipeline: use "
                                            "stages.distill.beta"),
    (ROW, {"beta": 2}, "stages.distill.beta"),
])
def test_a_teacher_the_row_cannot_give_is_refused_naming_the_key(row, distill, message):
    with pytest.raises(ConfigError) as err:
        config(row, distill)
    assert message in str(err.value)


def test_its_length_is_counted_in_generation_batches_before_it_runs():
    planned = {p.stage: p for p in preflight(config(distill={"training_args": {
        "num_train_epochs": 2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}}))}
    # 64 RL questions (data.rl_size) / (4 per device x 1 process x 2 accumulation) = 8 steps per epoch
    assert planned["distill"].length.steps == 16


def test_distillation_trains_the_student_toward_its_teacher(tiny_model, tiny_data, tiny_prep, tmp_path):
    """A real stage on the tiny model: the random student samples the RL questions, learns the format-trained
    prep model's distribution on them, and saves a model that moved; its log charges the teacher's passes."""
    from safetensors.torch import load_file

    from gsm_pipeline.jobs import train_distill

    cfg = validate_config(merge(load_config_file(GSM_PRESET), {
        **tiny_config(tiny_model, tiny_data), "experiments": {"tagged": ROW},
        "stages": {"distill": DISTILL}}))
    job = cfg.stage_job("tagged", "distill")
    out, log = tmp_path / "distill/model", tmp_path / "distill/log_history.json"
    train_distill.main(["--config", job.as_json(), "--parent", str(tiny_model), "--data",
                        str(tiny_prep / "data/rl.jsonl"), "--teacher", str(tiny_prep / "model"), "--out", str(out),
                        "--checkpoints", str(tmp_path / "distill/checkpoints"), "--log-history", str(log)])
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in after)
    history = json.loads(log.read_text())
    teacher = history[0]["runtime"]["teacher"]
    assert teacher["parameters"] > 0 and teacher["model"] == str(tiny_prep / "model")
    steps = [e for e in history if "loss" in e]
    assert len(steps) == 2 and all(e["completions/mean_length"] > 0 for e in steps)
    cost = stage_cost("distill-00000000", history, tmp_path, 0)
    n = history[0]["runtime"]["parameters"]
    assert cost["generated_tokens"] == pytest.approx(sum(e["completions/mean_length"] for e in steps) * 4)
    assert cost["flops"] == pytest.approx(6 * n * cost["trained_tokens"] + 2 * n * cost["generated_tokens"]
                                          + 2 * teacher["parameters"] * cost["trained_tokens"])
