"""Does training expand what the model can solve, or sharpen what it already could (Yue et al., arXiv 2504.13837)?
From each sampled evaluation: its pass@k curve (the unbiased estimator, grading/metrics.pass_at_k_curve, in the
evaluation's metrics.json), where a trained stage's curve crosses its base model's asked the same way, how
questions move between solve-rate bins (never, sometimes, always solved by the samples) from the base to the
stage, and how many distinct answers the samples give a question."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .comparison import STAGE_ORDER, row_key

BINS = ("never", "sometimes", "always")
MOVES = [f"{a}->{b}" for a in BINS for b in BINS]
COVERAGE_COLUMNS = ["experiment", "stage", "testset", "prompt", "questions", "pass@1", "base pass@1",
                    "pass@k", "base pass@k", "k", "crossing", *MOVES, "distinct answers", "base distinct answers"]


def solve_counts(samples: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """question id -> (samples drawn, strictly correct ones)."""
    out: dict[str, tuple[int, int]] = {}
    for s in samples:
        n, c = out.get(s["id"], (0, 0))
        out[s["id"]] = (n + 1, c + bool(s["correct_strict"]))
    return out


def solve_bin(n: int, c: int) -> str:
    return "never" if c == 0 else "always" if c == n else "sometimes"


def movement(base: dict[str, tuple[int, int]], stage: dict[str, tuple[int, int]]) -> dict[str, int]:
    """How many of the questions both evaluations sampled moved from each base bin to each stage bin."""
    out = dict.fromkeys(MOVES, 0)
    for qid in base.keys() & stage.keys():
        out[f"{solve_bin(*base[qid])}->{solve_bin(*stage[qid])}"] += 1
    return out


def distinct_answers(sampling: dict[str, Any]) -> float:
    """Mean over questions of the distinct strictly extracted answers (no answer counts as one), from the counts
    the evaluation recorded (generation/sampling.sample_metrics' unique_answers)."""
    counts = sampling["unique_answers"].values()
    return sum(counts) / len(counts) if counts else 0.0


def crossings(stage: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Where the stage's pass@k curve crosses the base's: between consecutive k of both curves where the sign of
    (stage - base) flips (equal values carry no sign), at the k found by linear interpolation on log2(k)."""
    ks = sorted((int(k) for k in stage.keys() & base.keys()))
    signed = [(k, stage[str(k)]["estimate"] - base[str(k)]["estimate"]) for k in ks]
    signed = [(k, d) for k, d in signed if not math.isclose(d, 0.0, abs_tol=1e-12)]
    out = []
    for (k0, d0), (k1, d1) in zip(signed, signed[1:]):
        if (d0 > 0) != (d1 > 0):
            at = 2 ** (math.log2(k0) + (math.log2(k1) - math.log2(k0)) * d0 / (d0 - d1))
            out.append({"after_k": k0, "before_k": k1, "k": at, "ahead_below": "stage" if d0 > 0 else "base"})
    return out


def _said(cross: list[dict[str, Any]], stage: dict, base: dict) -> str:
    if cross:
        return "; ".join(f"{c['ahead_below']} ahead below k={c['k']:.1f} (between {c['after_k']} and {c['before_k']})"
                         for c in cross)
    k = max(int(k) for k in stage.keys() & base.keys())
    d = stage[str(k)]["estimate"] - base[str(k)]["estimate"]
    return "none: " + ("stage ahead" if d > 0 else "base ahead" if d < 0 else "equal") + f" up to k={k}"


def coverage(rows: list[dict[str, Any]], evals: dict[tuple, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per trained stage's final sampled evaluation (each once, under the first experiment using it) that
    has a sampled base evaluation asked the same way: pass@1 and pass@k at the largest k both reach, the
    crossings, the bin movement and the distinct answers, beside the base's."""
    base = {(r["experiment"], r["prompt"], r["testset"]): evals.get(row_key(r)) for r in rows if r["stage"] == "base"}
    out, seen = [], set()
    for r in rows:
        ev, b = evals.get(row_key(r)), base.get((r["experiment"], r["prompt"], r["testset"]))
        if r["stage"] == "base" or "/step-" in r["run"] or row_key(r) in seen or not (ev and b):
            continue
        if not (ev.get("sampling") and b.get("sampling") and ev["samples"] and b["samples"]):
            continue
        seen.add(row_key(r))
        mine, theirs = ev["sampling"]["pass_at_k"], b["sampling"]["pass_at_k"]
        k = str(max(int(k) for k in mine.keys() & theirs.keys()))
        crossed = crossings(mine, theirs)
        moved = movement(solve_counts(b["samples"]), solve_counts(ev["samples"]))
        out.append({"experiment": r["experiment"], "stage": r["stage"], "testset": r["testset"], "prompt": r["prompt"],
                    "run": r["run"], "base_run": b["run"], "questions": sum(moved.values()),
                    "pass@1": mine["1"]["estimate"], "base pass@1": theirs["1"]["estimate"],
                    "pass@k": mine[k]["estimate"], "base pass@k": theirs[k]["estimate"], "k": int(k),
                    "crossings": crossed, "crossing": _said(crossed, mine, theirs),
                    **moved, "distinct answers": distinct_answers(ev["sampling"]),
                    "base distinct answers": distinct_answers(b["sampling"])})
    return out


def plot_pass_at_k(rows: list[dict[str, Any]], evals: dict[tuple, dict[str, Any]], table: list[dict[str, Any]],
                   path: Path) -> None:
    """pass@k against k (log2) with its bootstrap band, a panel per test set: each model asked as its row trains,
    base models dashed, trained stages solid, each crossing of a stage with its base marked by a cross."""
    from .plots import _pyplot

    plt = _pyplot()
    testsets = list(dict.fromkeys(r["testset"] for r in rows if evals.get(row_key(r), {}).get("sampling")))
    fig, axes = plt.subplots(1, len(testsets), figsize=(8 * len(testsets), 4.4), squeeze=False)
    for ax, testset in zip(axes[0], testsets):
        shown = {}
        # each model asked as its row trains (every prompt is in the table), its base asked the same way
        asked = [r for r in rows if r["testset"] == testset and "/step-" not in r["run"] and r["eval_matches_training"]]
        for r in sorted(asked, key=lambda r: STAGE_ORDER.index(r["stage"])):
            curve = (evals.get(row_key(r)) or {}).get("sampling", {}).get("pass_at_k")
            if curve and row_key(r) not in shown:
                ks = sorted(int(k) for k in curve)
                line, = ax.plot(ks, [curve[str(k)]["estimate"] for k in ks], marker=".",
                                ls="--" if r["stage"] == "base" else "-",
                                label=f"{r['experiment']} {r['stage']} [{r['prompt']}]")
                ax.fill_between(ks, [curve[str(k)]["ci95"][0] for k in ks], [curve[str(k)]["ci95"][1] for k in ks],
                                color=line.get_color(), alpha=0.12)
                shown[row_key(r)] = curve
        for t in (t for t in table if t["testset"] == testset):
            curve = shown.get((t["run"], t["prompt"], testset))
            for c in t["crossings"]:
                lo, hi = curve[str(c["after_k"])]["estimate"], curve[str(c["before_k"])]["estimate"]
                share = math.log2(c["k"] / c["after_k"]) / math.log2(c["before_k"] / c["after_k"])
                ax.plot(c["k"], lo + (hi - lo) * share, "kx", ms=9, mew=2)
        ax.set_xscale("log", base=2)
        ax.set(ylim=(0, 1.02), xlabel="k samples", ylabel="pass@k (unbiased, 95% bootstrap band)", title=testset)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
