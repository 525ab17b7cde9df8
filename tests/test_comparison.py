"""summary.json: the best row per test set and stage, and the spread over each sweep's rows."""
import pytest

from gsm_pipeline.reporting.comparison import method, summary


def row(experiment, accuracy, variant_of=None, stage="grpo"):
    return {"experiment": experiment, "stage": stage, "testset": "t", "prompt": "tagged-chat", "n": 10,
            "accuracy_strict": accuracy, "accuracy_flexible": accuracy, "answer_rate": 1.0, "variant_of": variant_of}


def test_a_sweeps_rows_are_summarised_by_mean_and_spread_and_the_best_row_is_named():
    rows = [row("plain", 0.5), row("s-seed0", 0.2, "s"), row("s-seed1", 0.4, "s"), row("s-seed2", 0.6, "s")]
    out = summary(rows, {"config_hash": "abc", "seed": 0})
    [sweep] = out["sweeps"]
    assert sweep["variant_of"] == "s" and sweep["rows"] == 3
    assert sweep["mean_accuracy_strict"] == pytest.approx(0.4) and sweep["min"] == 0.2 and sweep["max"] == 0.6
    assert sweep["sd_accuracy_strict"] == pytest.approx((0.08 / 3) ** 0.5)
    # over seeds: mean +- t(0.975, 2 dof) * sample sd / sqrt(3), t = 4.303 by the table, kept within [0, 1]
    assert (sweep["ci95_low"], sweep["ci95_high"]) == pytest.approx((0.0, 0.4 + 4.3027 * 0.2 / 3 ** 0.5), abs=1e-4)
    inside = summary([row(f"s-seed{i}", a, "s") for i, a in enumerate((0.4, 0.5, 0.6))], {})["sweeps"][0]
    assert (inside["ci95_low"], inside["ci95_high"]) == pytest.approx((0.5 - 0.24842, 0.5 + 0.24842), abs=1e-4)
    alone = summary([row("s-seed0", 0.3, "s")], {})["sweeps"][0]
    assert (alone["ci95_low"], alone["ci95_high"]) == (None, None)
    assert out["best_by_testset_and_stage"]["t/grpo"]["experiment"] == "s-seed2"


@pytest.mark.parametrize("stage, chat, answer_only, expected", [
    ("full_sft", True, True, "full_sft chat answer-loss"),
    ("full_sft", False, False, "full_sft raw full-loss"),
    ("grpo", False, True, "grpo raw"),
    ("base", True, True, "base (prompting)"),
])
def test_the_method_column_names_the_training_choices(stage, chat, answer_only, expected):
    assert method(stage, {"chat_template": chat, "completion_only_loss": answer_only}) == expected
