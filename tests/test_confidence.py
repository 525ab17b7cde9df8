"""Stated confidence: what SFT teaches, what GRPO rewards, and how calibration is measured."""

import pytest

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError, DataError
from gsm_pipeline.grading.answers import extract_confidence
from gsm_pipeline.grading.metrics import auroc, calibration
from gsm_pipeline.grading.rewards import calibration_score, make_reward_functions
from gsm_pipeline.jobs.confidence_targets import posterior_accuracy, sample_plan
from gsm_pipeline.jobs.train_sft import build_trainer
from gsm_pipeline.prompts import render_prompt, render_target

CONF = {"answer_format": "tagged", "chat_template": True, "confidence": True}
RIGHT = "<start_working_out>3+4=7<end_working_out><SOLUTION>7</SOLUTION>"
WRONG = "<start_working_out>3+4=8<end_working_out><SOLUTION>8</SOLUTION>"


# --- the reward -----------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, reward", [
    (RIGHT + "<confidence>1.0</confidence>", 1.0),     # right and sure: full reward
    (RIGHT + "<confidence>0.5</confidence>", 0.75),    # right but hedged: 1 - 0.25
    (WRONG + "<confidence>0.0</confidence>", 0.0),     # wrong and said so: no penalty
    (WRONG + "<confidence>0.9</confidence>", -0.81),   # wrong and sure: the Brier error
    (RIGHT, 0.0),                                      # no confidence: the worst Brier error, 1
    (WRONG + "<confidence>high</confidence>", -1.0),   # unparseable counts as missing
    (WRONG + "<confidence>1.7</confidence>", -1.0),    # out of [0, 1] too
])
def test_calibration_reward_is_correctness_minus_brier_error(completion, reward):
    assert calibration_score(completion, "7", "tagged") == pytest.approx(reward)


def test_calibration_reward_is_a_trl_reward_function():
    [fn] = make_reward_functions(["calibration"], "tagged")
    assert fn.__name__ == "calibration_reward"
    assert fn(completions=[RIGHT + "<confidence>1</confidence>", RIGHT], answer=["7", "7"]) == [1.0, 0.0]


def test_the_calibration_reward_needs_an_experiment_that_states_confidence():
    with pytest.raises(ConfigError, match=r"key 'experiments.x': .*calibration reward needs confidence: true"):
        validate_config({"experiments": {"x": {"rewards": ["calibration"]}}})


# --- what SFT teaches -----------------------------------------------------------------------------
def test_the_prompt_asks_for_confidence_and_the_target_states_it_after_the_answer(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert "<confidence>" in render_prompt("What is 3 + 4?", CONF, tokenizer)
    assert "<confidence>" not in render_prompt("What is 3 + 4?", {**CONF, "confidence": False}, tokenizer)
    target = render_target("3+4=7", "7", CONF, 0.237)
    assert target.endswith("<SOLUTION>7</SOLUTION><confidence>0.24</confidence>")
    assert extract_confidence(target) == 0.24
    assert render_target("3+4=7", "7", {"answer_format": "gsm8k", "confidence": True}, 0.5).endswith(
        "#### 7\n<confidence>0.50</confidence>")
    with pytest.raises(ValueError, match="confidence target is needed"):
        render_target("3+4=7", "7", CONF)


def sft_trainer(tmp_path, tiny_model, targets):
    cfg = validate_config({"experiments": {"x": {"confidence": True}},
                           "stages": {"prep_sft": {"max_length": 256, "training_args": {"max_steps": 1}}}})
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(6, seed=3))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    target_file = write_jsonl(tmp_path / "targets.jsonl", [{"id": k, "confidence": v} for k, v in targets.items()])
    return build_trainer(cfg.stage_job("x", "prep_sft"), str(tiny_model), str(data), tmp_path / "ckpt",
                         confidence_targets=str(target_file))


def test_sft_trains_on_each_rows_own_confidence_target(tmp_path, tiny_model):
    targets = {str(i): c for i, c in enumerate([0.05, 0.05, 0.3, 0.3, 0.8, 0.8])}
    trainer, tokenizer = sft_trainer(tmp_path, tiny_model, targets)
    seen = [extract_confidence(tokenizer.decode(ex["input_ids"])) for ex in trainer.train_dataset]
    assert sorted(seen) == sorted(round(c, 2) for c in targets.values())
    # the stated confidence is inside the loss: its tokens are labelled, not masked
    labels = trainer.data_collator([trainer.train_dataset[0]])["labels"][0].tolist()
    labelled = [t for t in labels if t != -100]
    assert "<confidence>" in tokenizer.decode(labelled)


def test_sft_names_a_row_without_a_confidence_target(tmp_path, tiny_model):
    with pytest.raises(DataError, match=r"rows.jsonl: no confidence target for row '5' \(1 rows lack one\)"):
        sft_trainer(tmp_path, tiny_model, {str(i): 0.5 for i in range(5)})


# --- where targets come from ------------------------------------------------------------------------
def test_each_template_gets_the_same_number_of_samples_spread_over_its_rows():
    rows = [{"id": "a", "template": 1}, {"id": "b", "template": 1}, {"id": "c", "template": 2}]
    assert sample_plan(rows, "template", 3) == [("template 1", 0), ("template 1", 1), ("template 1", 0),
                                                ("template 2", 2), ("template 2", 2), ("template 2", 2)]
    assert [g for g, _ in sample_plan(rows, "question", 1)] == ["question a", "question b", "question c"]


def test_targets_are_per_template_accuracy_shrunk_towards_the_pooled_rate():
    # 2 hits in 8 samples pooled: Jeffreys rate (2 + 0.5) / (8 + 1) = 0.2778
    outcomes = {"easy": [True, True, False, False], "hard": [False, False, False, False]}
    est = posterior_accuracy(outcomes, prior_strength=2.0)
    pooled = 2.5 / 9
    assert est["easy"] == pytest.approx((2 + 2 * pooled) / 6)
    assert est["hard"] == pytest.approx(2 * pooled / 6)
    assert est["easy"] > pooled > est["hard"] > 0


def test_the_targets_reference_model_must_be_a_stage_without_confidence():
    cfg = validate_config({"confidence": {"model": "tagged/prep_sft"}})
    # the reference model is sampled with the prompt it was trained on, not the confidence prompt
    assert cfg.targets_job(CONF).prompt == cfg.prompt_spec("tagged")
    with pytest.raises(ConfigError, match=r"confidence.model 'nosuch/prep_sft' must be 'base'"):
        validate_config({"confidence": {"model": "nosuch/prep_sft"}})


# --- measuring calibration ------------------------------------------------------------------------
def rows_of(pairs):
    return [{"confidence": c, "correct_strict": y} for c, y in pairs]


def test_perfectly_calibrated_confidence_has_zero_ece():
    rows = rows_of([(0.25, True)] + [(0.25, False)] * 3 + [(0.75, True)] * 3 + [(0.75, False)])
    out = calibration(rows)
    assert out["ece"] == pytest.approx(0.0) and out["confidence_rate"] == 1.0
    assert out["brier"] == pytest.approx(0.1875)  # 0.25 * 0.75 in every row


def test_ece_brier_and_auroc_match_hand_computed_values():
    # bin 9: two answers at 0.9, one right (gap 0.4); bin 1: two at 0.1, both wrong (gap 0.1); one missing
    rows = rows_of([(0.9, True), (0.9, False), (0.1, False), (0.1, False), (None, True)])
    out = calibration(rows)
    assert out["confidence_rate"] == pytest.approx(0.8) and out["confidence_n"] == 4
    assert out["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert out["brier"] == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert out["auroc"] == pytest.approx(2.5 / 3)  # the right answer beats two wrong ones and ties the third
    assert [b["count"] for b in out["bins"]] == [0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert auroc([0.5, 0.5], [True, False]) == 0.5 and auroc([0.5], [True]) is None


def test_no_stated_confidence_gives_empty_metrics_not_errors():
    out = calibration(rows_of([(None, True), (None, False)]))
    assert out["confidence_rate"] == 0 and out["ece"] is None and out["brier"] is None and out["auroc"] is None
