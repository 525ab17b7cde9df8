"""Evaluation statistics: Wilson intervals, exact McNemar tests, per-run summaries."""
from __future__ import annotations

import math
from typing import Any, Iterable

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (well-behaved at 0 and n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(a: Iterable[bool], b: Iterable[bool]) -> dict[str, Any]:
    """Exact McNemar test on paired outcomes: two-sided binomial test on the discordant pairs."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError("paired outcomes must have the same length")
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    if n == 0:
        p = 1.0
    else:
        k = min(only_a, only_b)
        p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"only_first": only_a, "only_second": only_b, "p_value": p}


def rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics for one evaluation from its per-example rows."""
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for kind in ("strict", "flexible"):
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
