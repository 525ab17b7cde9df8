"""Tasks are plugins: one module plus one registry line, picked by data.source."""
import json

import pytest

from conftest import Dag
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.grading.answers import grader
from gsm_pipeline.grading.formats import FORMATS
from gsm_pipeline.prompts import instruction_text
from gsm_pipeline.tasks import TASKS, get_task

TOY_TASK = '''"""Task `toy`: doubling numbers, generated offline."""
from gsm_pipeline.data import carve

INSTRUCTIONS = {"tagged": "Double the number. Put the result between <SOLUTION> and </SOLUTION>.",
                "gsm8k": "Double the number. End with '#### N'.", "boxed": "Double the number in \\\\boxed{}."}


def test_sets(cfg):
    return ["toy"]


def load(cfg, skipped, socratic=False):
    rows = [{"id": f"toy-{i}", "question": f"What is {i} doubled?", "reasoning": f"{i} * 2 = {2 * i}",
             "answer": str(2 * i), "template": None, "source": "toy"} for i in range(200)]
    return {**carve(rows[cfg.test_size:], cfg), "toy": rows[: cfg.test_size]}
'''


def test_the_built_in_tasks_are_registered_and_complete():
    assert list(TASKS) == ["gsm_symbolic", "gsm8k", "jsonl", "reasoning_gym"]
    for name in TASKS:
        task, grade = get_task(name), grader(name)
        graded = grade("<start_working_out>6*7<end_working_out><SOLUTION>42</SOLUTION>", 42.0, "tagged")
        assert graded["correct_strict"] and graded["has_working_out"]
        assert not grade("<SOLUTION>41</SOLUTION>", 42.0, "tagged")["correct_strict"]
        assert task.EXEMPLARS
        assert all(instruction_text({"task": name, "answer_format": f}) for f in FORMATS)


def test_an_unregistered_task_is_a_one_line_config_error():
    registered = "gsm_symbolic, gsm8k, jsonl, reasoning_gym"
    with pytest.raises(ConfigError, match=rf"key 'data.source': unknown task 'toy'; registered: {registered}$"):
        validate_config({"data": {"source": "toy"}})


@pytest.mark.dag
def test_a_new_task_is_one_file_and_one_registry_line(tmp_path):
    # 16 rows make 4 prep and 2 full SFT steps: checkpoints every 2 (the default's 8 would never come)
    dag = Dag(tmp_path, {"data": {"source": "toy", "prep_sft_size": 16, "full_sft_size": 16, "rl_size": 8,
                                  "test_size": 8},
                         "stages": {s: {"training_args": {"save_steps": 2}} for s in ("prep_sft", "full_sft")}})
    tasks = dag.root / "workflow/gsm_pipeline/tasks"
    (tasks / "toy.py").write_text(TOY_TASK)
    with (tasks / "__init__.py").open("a") as registry:
        registry.write('TASKS["toy"] = "gsm_pipeline.tasks.toy"\n')
    # the default pair on the toy task's one test set: 2 base prompts + 6 stages
    assert dag.planned_jobs() == {"prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2,
                                  "full_sft": 2, "rl": 2, "evaluate": 8, "report": 1, "all": 1}
    done = dag.snakemake("-n", "results/base/eval/tagged-chat/toy/metrics.json")
    assert "evaluate" in done.stdout
    dag.snakemake("results/data/manifest.json")
    assert json.loads((dag.root / "results/data/manifest.json").read_text())["counts"] == {
        "prep_sft": 16, "full_sft": 16, "rl": 8, "toy": 8, "fewshot": 192}  # carve's few-shot pool: all training rows
    first = json.loads((dag.root / "results/data/test/toy.jsonl").read_text().splitlines()[0])
    assert first["question"] == "What is 0 doubled?"
    # the task module is an input of every stage, so editing it replans the data (and all that follows)
    assert "prepare_data" not in dag.planned_jobs()
    (tasks / "toy.py").write_text(TOY_TASK + "\n# an edit\n")
    assert dag.planned_jobs()["prepare_data"] == 1


RG = {"source": "reasoning_gym", "prep_sft_size": 40, "full_sft_size": 40, "rl_size": 20, "test_size": 30}


def test_any_reasoning_gym_dataset_with_numbers_is_a_task_with_a_harder_test_set():
    """Training and rg_id come from the dataset's generator as configured; rg_harder from the same dataset at a
    difficulty never trained on, none of its problems in training; answers are exact numbers."""
    from gsm_pipeline.data import build_splits
    from gsm_pipeline.grading.numerals import exact_number

    cfg = validate_config({"data": {**RG, "reasoning_gym": {"dataset": "chain_sum", "config": {
        "min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1}, "harder": {
        "min_terms": 4, "max_terms": 5, "min_digits": 1, "max_digits": 1}}}})
    assert cfg.data.test_sets() == ["rg_id", "rg_harder"]
    splits, _ = build_splits(cfg.data)
    assert {k: len(v) for k, v in splits.items() if k != "fewshot"} == {"prep_sft": 40, "full_sft": 40, "rl": 20,
                                                                        "rg_id": 30, "rg_harder": 30}
    trained = {r["question"] for name in ("prep_sft", "full_sft", "rl") for r in splits[name]}
    assert len(trained) == 100 and not trained & {r["question"] for r in splits["rg_id"]}
    terms = lambda q: q.count("+") + q.count("-") + 1  # noqa: E731
    assert {terms(r["question"]) for r in splits["rg_id"]} <= {2, 3}
    assert {terms(r["question"]) for r in splits["rg_harder"]} <= {4, 5}
    assert all(exact_number(r["answer"]) is not None for rows in splits.values() for r in rows)
    assert build_splits(cfg.data)[0] == splits  # seeded: the same problems every time


SUBTRACTION = {"dataset": "basic_arithmetic", "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                           "max_digits": 2, "operators": ["-"]}}


def test_a_battery_task_is_a_test_set_of_a_task_no_stage_trains_on():
    """data.battery: each entry a reasoning-gym dataset, generated offline as a test set named by its key, beside
    the task's own sets; its problems are its own (numbers as answers, ids of its own)."""
    from gsm_pipeline.data import build_splits
    from gsm_pipeline.grading.numerals import exact_number

    cfg = validate_config({"data": {**RG, "battery": {"rg_sub": SUBTRACTION}}})
    assert cfg.data.test_sets() == ["rg_id", "rg_harder", "rg_sub"]
    splits, _ = build_splits(cfg.data)
    rows = splits["rg_sub"]
    assert len(rows) == 30 and all(" - " in r["question"] and exact_number(r["answer"]) is not None for r in rows)
    assert sorted(r["id"] for r in rows) == sorted(f"rg_sub-{i}" for i in range(30))
    assert not {r["question"] for r in rows} & {r["question"] for r in splits["prep_sft"] + splits["rg_id"]}


@pytest.mark.parametrize("battery, message", [
    ({"rg_sub": {**SUBTRACTION, "dataset": "basic_arithmetik"}},
     "battery.rg_sub.dataset: reasoning-gym has no 'basic_arithmetik'; did you mean 'basic_arithmetic'?"),
    ({"rg_sub": {**SUBTRACTION, "config": {"min_digitz": 1}}}, "battery.rg_sub.config: basic_arithmetic refuses"),
    ({"rg_id": SUBTRACTION}, "battery: 'rg_id' must match .* and not repeat another test set"),
])
def test_a_battery_task_reasoning_gym_refuses_is_named_at_validation(battery, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        validate_config({"data": {**RG, "battery": battery}})


@pytest.mark.parametrize("setting, message", [
    ({"dataset": "chain_summ"}, "reasoning_gym.dataset: reasoning-gym has no 'chain_summ'; did you mean 'chain_sum'?"),
    ({"config": {"min_termz": 2}}, "reasoning_gym.config: chain_sum refuses {'min_termz': 2}"),
    ({"harder": {"max_digits": 0}}, "reasoning_gym.harder: chain_sum refuses"),
])
def test_a_reasoning_gym_setting_its_generator_refuses_is_named_at_validation(setting, message, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for _ in range(2):  # by reasoning-gym itself, then from the verdict kept on disk for the next dry-run
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
            validate_config({"data": {**RG, "reasoning_gym": setting}})
    assert len(list(tmp_path.glob("gsm_pipeline/reasoning_gym-*.json"))) == 1


def test_a_reasoning_gym_dataset_whose_answers_are_not_numbers_is_named():
    from gsm_pipeline.data import build_splits
    from gsm_pipeline.errors import DataError

    cfg = validate_config({"data": {**RG, "reasoning_gym": {"dataset": "number_sorting", "config": {},
                                                              "harder": {}}}})
    with pytest.raises(DataError, match="number_sorting's answers are not numbers"):
        build_splits(cfg.data)
