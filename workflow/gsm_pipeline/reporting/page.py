"""The report page: one function builds everything the page shows (`page_context`), and the jinja2 template
`templates/report.html.j2` lays it out. The page opens with the answer (per test set, base -> prep SFT -> full
SFT -> the RL stage, named by its method: accuracy and format rate with intervals, in a few sentences), the
details follow."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..grading.metrics import rate_interval
from ..training.methods import RL_METHODS
from .comparison import (
    CALIBRATION_COLUMNS,
    RUNTIME_COLUMNS,
    STAGE_ORDER,
    SWEEP_COLUMNS,
    History,
    findings,
    row_key,
    runtime_rows,
    stage_label,
    sweeps,
)

TEMPLATES = Path(__file__).parent / "templates"
COMPARISON_COLUMNS = ["experiment", "stage", "trained", "method", "testset", "prompt", "n", "accuracy_strict",
                      "ci95_low", "ci95_high", "accuracy_flexible", "answer_rate", "thinking_rate", "truncation_rate",
                      "p_strict_vs_base", "p_answer_rate_vs_base", "p_strict_vs_parent"]
# lm-eval's graders beside ours: the second opinion a published number is set beside (grading/harness.py)
LM_EVAL_COLUMNS = ["experiment", "stage", "run", "testset", "prompt", "n", "accuracy_strict", "accuracy_lmeval_strict",
                   "lmeval_strict_ci95_low", "lmeval_strict_ci95_high", "lmeval_strict_differs_from_ours",
                   "accuracy_flexible", "accuracy_lmeval_flexible", "lmeval_flexible_ci95_low",
                   "lmeval_flexible_ci95_high", "lmeval_flexible_differs_from_ours"]
TRAINING_COLUMNS = ["run", "method", "objective", "steps", "first_loss", "last_loss", "first_reward", "last_reward",
                    "mean_reward", "share_groups_with_reward_variance", "zero_variance_all_correct",
                    "zero_variance_all_wrong", "first_entropy", "last_entropy"]
HEADLINE_EXPERIMENTS = 6  # more rows than this stop being one screen; the table below has them all


def eval_key(e: dict[str, Any]) -> tuple[str, str, str]:
    return e["run"], e["prompt_key"], e["testset"]


def unique_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each evaluation once, under the first experiment using it (comparison.csv repeats shared ones)."""
    first: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(row_key(r), r)
    return list(first.values())


def _cell(r: dict[str, Any]) -> dict[str, float]:
    fmt_low, fmt_high = rate_interval(r["answer_rate"], r["n"])
    return {"acc": r["accuracy_strict"], "acc_low": r["ci95_low"], "acc_high": r["ci95_high"],
            "fmt": r["answer_rate"], "fmt_low": fmt_low, "fmt_high": fmt_high}


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}-{high:.0%}"


def answer(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per test set, each experiment asked as trained: its stages' accuracy and format rate; and the sentences
    that say what moved (ranges over experiments and test sets, and how many changes McNemar calls real)."""
    asked = [r for r in rows if r["eval_matches_training"]]
    names = list(dict.fromkeys(r["experiment"] for r in asked))
    shown = names[:HEADLINE_EXPERIMENTS]
    stages = [s for s in STAGE_ORDER if any(r["stage"] == s for r in asked)]
    labels = {s: stage_label(s, {RL_METHODS[r["rl"]] for r in asked if r["stage"] == s and r.get("rl")})
              for s in stages}
    blocks = []
    for testset in dict.fromkeys(r["testset"] for r in asked):
        by = {(r["experiment"], r["stage"]): r for r in asked if r["testset"] == testset}
        blocks.append({"testset": testset, "n": max(r["n"] for r in by.values()),
                       "stages": [labels[s] for s in stages],
                       "experiments": [{"name": e, "cells": [_cell(by[(e, s)]) if (e, s) in by else None
                                                             for s in stages]} for e in shown]})
    sentences = []
    for metric, label in (("answer_rate", "Answer-format rate"), ("accuracy_strict", "Strict accuracy")):
        parts = [f"{labels[s]} {_span([r[metric] for r in asked if r['stage'] == s])}" for s in stages]
        sentences.append(f"{label}: {' -> '.join(parts)} (range over experiments and test sets).")
    trained = [r for r in asked if r["stage"] != "base" and r["p_strict_vs_base"] is not None
               and r["p_answer_rate_vs_base"] is not None]
    if trained:
        moved = {m: sum(r[f"p_{m}_vs_base"] < 0.05 for r in trained) for m in ("answer_rate", "strict")}
        sentences.append(f"Against the base model on the same problems (exact McNemar, p < 0.05), "
                         f"{moved['answer_rate']} of {len(trained)} trained stages changed the format rate and "
                         f"{moved['strict']} changed strict accuracy.")
    if len(names) > len(shown):
        sentences.append(f"The first {len(shown)} of {len(names)} experiments are shown here; all are in the "
                         "table below.")
    return {"testsets": blocks, "sentences": sentences}


def _links(evals: list[dict[str, Any]], out_dir: Path, file: str | None = None) -> list[dict[str, str]]:
    return [{"href": os.path.relpath(Path(e["path"]).parent / file if file else e["path"], out_dir),
             "label": "/".join(eval_key(e))} for e in evals]


def _sampling(rows: list[dict[str, Any]], sampling: dict[tuple, dict]) -> dict[str, Any] | None:
    if not sampling:
        return None
    first = next(iter(sampling.values()))
    lost = [{"run": r["run"], "prompt": r["prompt"], "testset": r["testset"], "samples": m["samples"],
             "lost_by_vote": len(m["lost_by_vote"]), "lost_by_scorer": len(m["lost_by_scorer"]),
             "questions": " ".join(sorted(set(m["lost_by_vote"]) | set(m["lost_by_scorer"])))}
            for r in rows if (m := sampling.get(row_key(r)))]
    counts = sorted({m["samples"] for m in sampling.values()})  # a row's eval_samples may differ from the rest
    return {"samples": " or ".join(map(str, counts)), "temperature": first["temperature"], "scorer": first["scorer"],
            "lost": {"columns": list(lost[0]) if lost else [], "rows": lost}}


def _calibration(rows: list[dict[str, Any]], evals: list[dict[str, Any]], out_dir: Path) -> dict[str, Any] | None:
    if not any(r["confidence"] for r in rows):
        return None
    asked = [r for r in unique_rows(rows) if r["eval_matches_training"]]
    ordered = sorted(asked, key=lambda r: (r["testset"], STAGE_ORDER.index(r["stage"]), r["confidence"]))
    cols = ["testset", "stage", "experiment", "prompt", "n", "accuracy_strict", "ci95_low", "ci95_high",
            "answer_rate", *CALIBRATION_COLUMNS]
    stated = [e for e in evals if (e.get("prompt") or {}).get("confidence")]
    return {"table": {"columns": cols, "rows": ordered}, "links": _links(stated, out_dir, "calibration.csv")}


def _examples(evals: list[dict[str, Any]], rows: list[dict[str, Any]], per_set: int = 3) -> list[dict[str, Any]]:
    """The same problems' completions across every stage, side by side."""
    by_key = {eval_key(e): e for e in evals}
    out = []
    for exp, testset in sorted({(r["experiment"], r["testset"]) for r in rows}):
        runs = [r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)]
        evs = [by_key[row_key(r)] for r in runs]
        for pid in sorted(set.intersection(*(set(e["rows"]) for e in evs)))[:per_set]:
            q = evs[0]["rows"][pid]
            out.append({"experiment": exp, "testset": testset, "id": pid, "gold": q["gold"], "question": q["question"],
                        "runs": [{"stage": r["stage"], "prompt": r["prompt"],
                                  "mark": "correct" if e["rows"][pid]["correct_strict"] else "wrong",
                                  "completion": e["rows"][pid]["completion"][:800]} for r, e in zip(runs, evs)]})
    return out


def page_context(evals: list[dict[str, Any]], rows: list[dict[str, Any]], train: list[dict[str, Any]],
                 histories: list[History], sampling: dict[tuple, dict], crossed: bool,
                 out_dir: Path, provenance: dict[str, Any], compute: dict[str, Any],
                 coverage: dict[str, Any] | None = None, dynamics: dict[str, bool] | None = None,
                 forgetting: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the page shows, as data (`compute`: the headline section, from `compute_context`; `coverage`:
    the pass@k table, from reporting/coverage.py, None without sampling; `dynamics`: which of the RL dynamics
    and the KL-at-evaluation figures were drawn; `forgetting`: the forgetting table, None without a battery)."""
    return {"compute": compute, "answer": answer(rows), "findings": findings(rows), "provenance": provenance,
            "comparison": {"columns": COMPARISON_COLUMNS, "rows": unique_rows(rows)},
            "lm_eval": {"columns": LM_EVAL_COLUMNS, "rows": unique_rows(rows),
                        "graded": any(r.get("accuracy_lmeval_strict") is not None for r in rows)},
            "sweeps": {"columns": SWEEP_COLUMNS, "rows": sweeps(rows)},
            "metric_links": _links(evals, out_dir), "crossed": crossed,
            "calibration": _calibration(rows, evals, out_dir), "sampling": _sampling(rows, sampling),
            "coverage": coverage, "dynamics": dynamics or {"training": False, "kl": False}, "forgetting": forgetting,
            "trained": bool(histories), "training": {"columns": TRAINING_COLUMNS, "rows": train},
            "examples": _examples(evals, rows),
            "runtime": {"columns": RUNTIME_COLUMNS, "rows": runtime_rows(evals, histories)},
            "provenance_json": json.dumps(provenance, indent=2)}


POINT_COLUMNS = ["experiment", "stage", "stage_step", "testset", "n", "optimizer_steps", "flops", "wall_s",
                 "accuracy_strict", "ci95_low", "ci95_high", "ci95_width", "answer_rate", "kl_to_base"]
COST_COLUMNS = ["trained", "run", "stage", "steps", "wall_s", "gpus", "gpu_hours", "trained_tokens", "generated_tokens",
                "flops", "peak_rss_gb", "peak_gpu_memory_gb", "target_tokens", "parameters"]


def compute_context(points: list[dict[str, Any]], costs: list[dict[str, Any]],
                    figures: dict[str, str] | None) -> dict[str, Any]:
    """The headline section: accuracy against compute and steps, every point, and the cost table."""
    sizes = sorted({c["parameters"] for c in costs if c["parameters"]})
    return {"figures": figures, "parameters": ", ".join(f"{n:,}" for n in sizes) or "unknown",
            "points": {"columns": POINT_COLUMNS, "rows": points}, "costs": {"columns": COST_COLUMNS, "rows": costs}}


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if (value < 0.001 and value != 0) or abs(value) >= 1e4 else f"{value:.3f}"
    return "" if value is None else str(value)


def render_page(context: dict[str, Any]) -> str:
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = cell
    # a long column name may break after an underscore, so a wide table folds its header instead of the page
    env.filters["breakable"] = lambda name: markupsafe.Markup(str(markupsafe.escape(name)).replace("_", "_<wbr>"))
    return env.get_template("report.html.j2").render(**context)
