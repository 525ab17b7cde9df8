"""Evaluation statistics: Wilson intervals, exact McNemar tests, per-run summaries."""
from __future__ import annotations

import math
from typing import Any, Iterable


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (well-behaved at 0 and n); scipy's, not a twin."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def rate_interval(rate: float, n: int) -> tuple[float, float]:
    """The Wilson interval of a rate stored as a fraction of n (e.g. metrics.json's answer_rate)."""
    return wilson_interval(round(rate * n), n)


def mcnemar_exact(a: Iterable[bool], b: Iterable[bool]) -> dict[str, Any]:
    """Exact McNemar test on paired outcomes: two-sided binomial test on the discordant pairs."""
    from scipy.stats import binomtest

    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError("paired outcomes must have the same length")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    # exact McNemar = two-sided binomial test of the discordant pairs against 1/2
    p = 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)
    return {"only_first": only_a, "only_second": only_b, "p_value": p}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one question with c correct among n samples (Chen et al., arXiv 2107.03374): the
    chance that k of them drawn without replacement include a correct one, 1 - C(n-c, k) / C(n, k). Exact
    integer binomials, so no overflow at large n."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_curve(counts: list[tuple[int, int]], ks: Iterable[int]) -> dict[str, dict[str, Any]]:
    """pass@k over questions, each given as (n samples, c correct), for every k no question lacks samples for:
    the mean of the per-question estimates with a 95% percentile bootstrap interval over questions (scipy's,
    seeded, so a rerun gives the same interval)."""
    import numpy as np
    from scipy.stats import bootstrap

    out: dict[str, dict[str, Any]] = {}
    fewest = min((n for n, _ in counts), default=0)
    for k in [k for k in ks if 0 < k <= fewest]:
        values = np.array([pass_at_k(n, c, k) for n, c in counts])
        if len(values) > 1 and np.ptp(values) > 0:
            ci = bootstrap((values,), np.mean, confidence_level=0.95, method="percentile", n_resamples=2000,
                           random_state=0).confidence_interval
            low, high = float(ci.low), float(ci.high)
        else:  # every question alike (or one question): resampling cannot move the mean
            low = high = float(values.mean())
        out[str(k)] = {"estimate": float(values.mean()), "ci95": [low, high], "questions": len(values)}
    return out


# This project's two graders, then lm-eval's (grading/harness.py): each is a correct_<kind> field of every prediction
# and an accuracy_<kind> with its interval and count in every metrics.json
GRADERS = ("strict", "flexible", "lmeval_strict", "lmeval_flexible")


def rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics for one evaluation from its per-example rows."""
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for kind in [k for k in GRADERS if all(f"correct_{k}" in r for r in rows)]:  # rows graded before lm-eval's
        hits = sum(bool(r[f"correct_{kind}"]) for r in rows)
        low, high = wilson_interval(hits, n)
        out[f"accuracy_{kind}"] = hits / n if n else 0.0
        out[f"accuracy_{kind}_ci95"] = [low, high]
        out[f"correct_{kind}"] = hits
    out["answer_rate"] = rate([r["has_answer"] for r in rows])
    out["thinking_rate"] = rate([r["has_working_out"] for r in rows])
    out["truncation_rate"] = rate([r["truncated"] for r in rows])
    out["mean_completion_tokens"] = sum(r["completion_tokens"] for r in rows) / n if n else 0.0
    return out


CALIBRATION_BINS = 10


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a correct answer got a higher confidence than a wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def calibration_bins(confidences: list[float], correct: list[bool], bins: int = CALIBRATION_BINS) -> list[dict]:
    """Equal-width bins over [0, 1]: count, mean stated confidence and accuracy in each (the reliability diagram)."""
    table = []
    for b in range(bins):
        members = [(c, y) for c, y in zip(confidences, correct) if min(int(c * bins), bins - 1) == b]
        table.append({"bin": b, "low": b / bins, "high": (b + 1) / bins, "count": len(members),
                      "mean_confidence": sum(c for c, _ in members) / len(members) if members else None,
                      "accuracy": sum(y for _, y in members) / len(members) if members else None})
    return table


def calibration(rows: list[dict[str, Any]], field: str = "correct_strict") -> dict[str, Any]:
    """Stated-confidence metrics over the completions that stated one: ECE (10 equal-width bins), Brier score,
    AUROC of confidence for correct vs wrong, and the confidence-correctness correlation."""
    stated = [r for r in rows if r.get("confidence") is not None]
    conf = [float(r["confidence"]) for r in stated]
    hits = [bool(r[field]) for r in stated]
    n = len(stated)
    bins = calibration_bins(conf, hits)
    ece = sum(b["count"] / n * abs(b["mean_confidence"] - b["accuracy"]) for b in bins if b["count"]) if n else None
    return {
        "confidence_rate": n / len(rows) if rows else 0.0, "confidence_n": n,
        "mean_confidence": sum(conf) / n if n else None,
        "accuracy_when_stated": sum(hits) / n if n else None,
        "ece": ece, "brier": sum((c - y) ** 2 for c, y in zip(conf, hits)) / n if n else None,
        "auroc": auroc(conf, hits), "confidence_correlation": pearson(conf, [float(h) for h in hits]),
        "bins": bins,
    }
