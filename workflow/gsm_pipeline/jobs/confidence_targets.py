"""Confidence targets for SFT: the base model's measured accuracy on problems like each training row.

    python -m gsm_pipeline.jobs.confidence_targets --config JOB_JSON --model BASE --data ROWS.jsonl ... \
        --out TARGETS.jsonl

Rows are grouped by gsm_symbolic template (by question for data without templates). The base model
samples `samples_per_group` completions per group, spread over the group's rows, graded flexibly (the
last number: the base model rarely follows the answer format, and the question is whether it can get
the number right). A group's target is its posterior mean accuracy under a Beta prior centred on the
pooled accuracy with weight `prior_strength` samples, so a group with few samples is pulled towards
the average rather than to a hard 0 or 1. Computed once and shared by every confidence experiment
using the same prompt.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError, run_main
from ..generation.journal import Journal, journal_stamp, journaled_generate
from ..grading.answers import final_number, grader
from ..model_io import check_model_dir
from ..prompts import render_prompt
from ..rows import load_rows, write_jsonl
from ..runtime import autocast, load_for_generation, seed_everything
from ..settings.evaluation import TargetsJob


def group_of(row: dict[str, Any], group_by: str) -> str:
    if group_by == "template" and row.get("template") is not None:
        return f"template {row['template']}"
    return f"question {row['id']}"


def sample_plan(rows: list[dict[str, Any]], group_by: str, per_group: int) -> list[tuple[str, int]]:
    """(group, row index) for every completion to sample: each group's rows in turn, `per_group` in all."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(group_of(row, group_by), []).append(i)
    return [(g, members[k % len(members)]) for g, members in groups.items() for k in range(per_group)]


def posterior_accuracy(outcomes: dict[str, list[bool]], prior_strength: float) -> dict[str, float]:
    """Per-group accuracy shrunk towards the pooled accuracy (a Beta prior worth `prior_strength` samples;
    the pooled rate itself uses Jeffreys' prior, so it is never exactly 0 or 1)."""
    hits = sum(sum(o) for o in outcomes.values())
    total = sum(len(o) for o in outcomes.values())
    pooled = (hits + 0.5) / (total + 1)
    return {g: (sum(o) + prior_strength * pooled) / (len(o) + prior_strength) for g, o in outcomes.items()}


def estimate_targets(model, tokenizer, rows: list[dict[str, Any]], job: TargetsJob,
                     journal: Journal | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    plan = sample_plan(rows, job.group_by, job.samples_per_group)
    prompts = [render_prompt(rows[i]["question"], job.prompt, tokenizer) for _, i in plan]
    outputs = journaled_generate(model, tokenizer, prompts, job, journal,
                                 do_sample=True, temperature=job.temperature)
    outcomes: dict[str, list[bool]] = {}
    spec = job.prompt
    for (g, i), out in zip(plan, outputs):
        graded = grader(spec.task)(out["completion"], final_number(rows[i]["answer"]), spec.answer_format)
        outcomes.setdefault(g, []).append(bool(graded["correct_flexible"]))
    target = posterior_accuracy(outcomes, job.prior_strength)
    targets = [{"id": r["id"], "group": (g := group_of(r, job.group_by)), "confidence": round(target[g], 4),
                "group_samples": len(outcomes[g]), "group_correct": sum(outcomes[g])} for r in rows]
    values = sorted({t["confidence"] for t in targets})
    summary = {"rows": len(rows), "groups": len(outcomes), "samples": len(plan),
               "generated_tokens": sum(out["completion_tokens"] for out in outputs),  # the report's compute axis
               "correct": sum(sum(o) for o in outcomes.values()), "distinct_targets": len(values),
               "min_target": values[0], "max_target": values[-1], "job": job.stamp()}
    return targets, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-row confidence targets from the base model's sampled accuracy.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", required=True, help="job settings as JSON")
    parser.add_argument("--model", required=True, help="the model whose accuracy is measured (the base model)")
    parser.add_argument("--data", nargs="+", required=True, help="SFT rows (JSONL) that need targets")
    parser.add_argument("--out", required=True, help="targets JSONL (a .summary.json is written beside it)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    job = TargetsJob.parse(args.config)
    seed_everything(job.seed, args.threads)
    check_model_dir(args.model)
    rows = [row for path in args.data for row in load_rows(path)]
    if not rows:
        raise DataError(f"{', '.join(args.data)}: no rows to estimate confidence targets for")
    model, tokenizer, precision, runtime = load_for_generation(args.model, job, args.threads)
    out = Path(args.out)
    journal = Journal(out.parent, out.stem, journal_stamp(job, args.model, rows, runtime))
    with autocast(precision):
        targets, summary = estimate_targets(model, tokenizer, rows, job, journal)
    summary["runtime"] = runtime
    write_jsonl(out, targets)
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    journal.remove()
    print(f"{summary['correct']}/{summary['samples']} sampled completions correct over {summary['groups']} groups; "
          f"{summary['distinct_targets']} distinct targets in [{summary['min_target']}, {summary['max_target']}]",
          file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
