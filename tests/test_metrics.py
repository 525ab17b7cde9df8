"""Intervals and paired tests match textbook values."""
import pytest

from gsm_pipeline.grading.metrics import mcnemar_exact, rate_interval, summarize, wilson_interval


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 64)[0] == 0.0 and wilson_interval(0, 64)[1] == pytest.approx(0.0565, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_rates_interval_is_the_wilson_interval_of_its_count():
    """The page's and the curve's format-rate band: a stored rate of 0.8 over 10 problems is 8 successes."""
    assert rate_interval(0.8, 10) == wilson_interval(8, 10)
    assert rate_interval(2 / 3, 3)[0] == pytest.approx(0.2077, abs=1e-4)  # 2 of 3, not round(0.67) = 1 of 3


def test_mcnemar_exact_uses_only_discordant_pairs():
    # 10 problems only the first gets right, 2 only the second: p = 2 * P(X <= 2 | n=12, 1/2) = 0.0386
    first = [True] * 10 + [False] * 2 + [True] * 5
    second = [False] * 10 + [True] * 2 + [True] * 5
    result = mcnemar_exact(first, second)
    assert (result["only_first"], result["only_second"]) == (10, 2)
    assert result["p_value"] == pytest.approx(0.03857, abs=1e-4)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0


def test_summary_counts_rates():
    rows = [{"correct_strict": s, "correct_flexible": f, "has_answer": a, "has_working_out": w,
             "truncated": t, "completion_tokens": n}
            for s, f, a, w, t, n in [(True, True, True, False, False, 10), (False, True, False, False, True, 30),
                                     (False, False, True, True, False, 20), (False, True, True, False, False, 20)]]
    out = summarize(rows)
    assert out["n"] == 4 and out["accuracy_strict"] == 0.25 and out["accuracy_flexible"] == 0.75
    assert out["answer_rate"] == 0.75 and out["truncation_rate"] == 0.25 and out["mean_completion_tokens"] == 20
    assert out["thinking_rate"] == 0.25  # working out, not the answer field
