"""The final report: comparison.csv plus one HTML page with charts and completions.

Every evaluation's metrics.json carries its labels (experiment, stage, test set,
prompt, parent run), so the report needs nothing but the files it is given.
"""
from __future__ import annotations

import argparse
import html
import json
import os
from pathlib import Path
from typing import Any

from .comparison import (
    CALIBRATION_COLUMNS,
    RUNTIME_COLUMNS,
    STAGE_ORDER,
    comparison_rows,
    findings,
    read_history,
    row_key,
    runtime_rows,
    summary,
    training_rows,
)
from .data import load_rows
from .errors import run_main
from .plots import plot_accuracy, plot_reliability, plot_sampling, plot_template_scatter, plot_training_curves


def eval_key(e: dict[str, Any]) -> tuple[str, str, str]:
    return e["run"], e["prompt_key"], e["testset"]


def unique_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each evaluation once, under the first experiment using it (comparison.csv repeats shared ones)."""
    first: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(row_key(r), r)
    return list(first.values())


def load_evaluations(metrics_files: list[str]) -> list[dict[str, Any]]:
    evals = []
    for path in metrics_files:
        metrics = json.loads(Path(path).read_text())
        metrics["path"] = str(path)
        metrics["rows"] = {r["id"]: r for r in load_rows(Path(path).parent / "predictions.jsonl")}
        samples = Path(path).parent / "samples.jsonl"
        metrics["samples"] = load_rows(samples) if samples.is_file() else []
        table = Path(path).parent / "calibration.csv"
        metrics["calibration_bins"] = read_bins(table) if table.is_file() else []
        evals.append(metrics)
    return evals


def read_bins(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_csv(path)
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def calibration_html(rows: list[dict[str, Any]], evals: list[dict[str, Any]], out_dir: Path) -> str:
    """Plain and confidence experiments' rows side by side per stage and test set, and reliability diagrams."""
    if not any(r["confidence"] for r in rows):
        return ("<h2>Is stated confidence calibrated?</h2><p>No experiment in this config states a confidence "
                "(experiments.&lt;name&gt;.confidence: true).</p>")
    plot_reliability(rows, {eval_key(e): e["calibration_bins"] for e in evals},
                     out_dir / "calibration.png")
    asked_as_trained = [r for r in unique_rows(rows) if r["eval_matches_training"]]
    ordered = sorted(asked_as_trained, key=lambda r: (r["testset"], STAGE_ORDER.index(r["stage"]), r["confidence"]))
    cols = ["testset", "stage", "experiment", "prompt", "n", "accuracy_strict", "ci95_low", "ci95_high",
            "answer_rate", *CALIBRATION_COLUMNS]
    links = ", ".join(f'<a href="{html.escape(os.path.relpath(Path(e["path"]).parent / "calibration.csv", out_dir))}">'
                      f'{html.escape("/".join(eval_key(e)))}</a>'
                      for e in evals if (e.get("prompt") or {}).get("confidence"))
    return (
        "<h2>Did calibration training cost accuracy, and is the stated confidence informative?</h2>"
        "<p>Each stage's plain and confidence rows sit together. ECE uses 10 equal-width bins; Brier is the mean "
        "squared error of the stated confidence against strict correctness; AUROC is the chance that a correct "
        "answer states a higher confidence than a wrong one (blank when every answer was right or every one wrong); "
        "all over the answers that stated a confidence (confidence_rate of them). SFT targets are the base model's "
        "sampled accuracy per template (results/confidence_targets).</p>"
        '<img src="calibration.png" alt="reliability diagrams">'
        f'<div class="wide">{table_html(ordered, cols)}</div><p>Calibration tables (bin, count, mean confidence, '
        f"accuracy): {links}.</p>")


def template_html(crossed: bool) -> str:
    head = ("<h2>Does the chat template matter at evaluation time?</h2><p>Question: is a model more accurate "
            "asked with its chat template or without it, whichever way it was trained?</p>")
    if not crossed:
        return head + ("<p>No experiment is evaluated both ways (experiments.&lt;name&gt;.eval_chat_template: "
                       "[true, false]).</p>")
    return head + ('<img src="template_scatter.png" alt="accuracy with vs without the chat template">'
                   "<p>One point per (experiment, stage, test set, eval format); above the diagonal, the raw "
                   "prompt did better.</p>")


def per_example_table(evals: list[dict[str, Any]]):
    """Every graded completion, greedy and sampled, with the run and test set it belongs to."""
    import pandas as pd

    keep = ["id", "gold", "completion", "extracted_strict", "extracted_flexible", "correct_strict",
            "correct_flexible", "confidence", "truncated", "completion_tokens"]
    frames = []
    for e in evals:
        for kind, rows in (("greedy", list(e["rows"].values())), ("sampled", e["samples"])):
            if rows:
                frame = pd.DataFrame(rows)
                frame = frame[keep + (["sample", "score"] if kind == "sampled" else [])]
                frames.append(frame.assign(run=e["run"], prompt=e["prompt_key"], testset=e["testset"],
                                           decoding=kind))
    return pd.concat(frames, ignore_index=True)


def table_html(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if v < 0.001 and v != 0 else f"{v:.3f}"
        return html.escape("" if v is None else str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def sampling_html(rows: list[dict[str, Any]], sampling: dict[tuple[str, str], dict]) -> str:
    """Does sampling help? Curves, plus the questions a correct sample existed for but the vote or scorer lost."""
    if not sampling:
        return ("<h2>Does sampling help?</h2><p>Sampling is off in this config (evaluation.samples: 0); "
                "maj@n, best-of-n and pass@n need it.</p>")
    first = next(iter(sampling.values()))
    lost = [{"run": r["run"], "prompt": r["prompt"], "testset": r["testset"], "lost_by_vote": len(m["lost_by_vote"]),
             "lost_by_scorer": len(m["lost_by_scorer"]),
             "questions": " ".join(sorted(set(m["lost_by_vote"]) | set(m["lost_by_scorer"])))}
            for r in rows if (m := sampling.get(row_key(r)))]
    return (f"<h2>Does sampling help?</h2><p>{first['samples']} samples per question at temperature "
            f"{first['temperature']}; best-of-n ranks by {html.escape(first['scorer'])}; strict extraction. "
            "Curves use the first n samples.</p><img src=\"sampling.png\" alt=\"maj@n, best-of-n, pass@n\">"
            "<h3>Where a correct sample existed but the vote or the scorer chose wrong</h3>"
            f"<div class=\"wide\">{table_html(lost, list(lost[0]) if lost else [])}</div>")


def examples_html(evals: list[dict[str, Any]], rows: list[dict[str, Any]], per_set: int = 3) -> str:
    """The same problems' completions across every stage, side by side."""
    by_key = {eval_key(e): e for e in evals}
    parts = []
    for exp, testset in sorted({(r["experiment"], r["testset"]) for r in rows}):
        runs = [r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)]
        evs = [by_key[row_key(r)] for r in runs]
        ids = sorted(set.intersection(*(set(e["rows"]) for e in evs)))[:per_set]
        for pid in ids:
            q = evs[0]["rows"][pid]
            parts.append(f"<h4>{html.escape(exp)} / {html.escape(testset)} / {html.escape(pid)} "
                         f"(gold {html.escape(str(q['gold']))})</h4><p>{html.escape(q['question'])}</p><table>")
            for r, e in zip(runs, evs):
                ex = e["rows"][pid]
                mark = "correct" if ex["correct_strict"] else "wrong"
                parts.append(f"<tr><td>{r['stage']}<br>{html.escape(r['prompt'])}<br><i>{mark}</i></td>"
                             f"<td><pre>{html.escape(ex['completion'][:800])}</pre></td></tr>")
            parts.append("</table>")
    return "\n".join(parts)


def metric_links(evals: list[dict[str, Any]], out_dir: Path) -> str:
    return ", ".join(f'<a href="{html.escape(os.path.relpath(e["path"], out_dir))}">'
                     f'{html.escape("/".join(eval_key(e)))}</a>' for e in evals)


def write_report(metrics_files: list[str], log_files: list[str], experiments: dict[str, dict],
                 out_dir: Path, provenance: dict[str, Any]) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    evals = load_evaluations(metrics_files)
    rows = comparison_rows(evals, experiments)
    pd.DataFrame(rows).to_csv(out_dir / "comparison.csv", index=False)
    per_example_table(evals).to_csv(out_dir / "per_example.csv", index=False)
    (out_dir / "summary.json").write_text(json.dumps(summary(rows, provenance), indent=2))
    train = training_rows(log_files)
    (out_dir / "training.json").write_text(json.dumps(train, indent=2))
    plot_accuracy(rows, out_dir / "accuracy.png")
    crossed = plot_template_scatter(rows, out_dir / "template_scatter.png")
    if log_files:
        plot_training_curves([read_history(p) for p in log_files], out_dir / "training_curves.png")
    sampling = {eval_key(e): e["sampling"] for e in evals if "sampling" in e}
    if sampling:
        plot_sampling(rows, sampling, out_dir / "sampling.png")
    cols = ["experiment", "stage", "method", "testset", "prompt", "n", "accuracy_strict", "ci95_low", "ci95_high",
            "accuracy_flexible", "answer_rate", "thinking_rate", "truncation_rate", "p_strict_vs_base",
            "p_answer_rate_vs_base", "p_strict_vs_parent"]
    train_cols = ["run", "steps", "first_loss", "last_loss", "first_reward", "last_reward", "mean_reward",
                  "share_groups_with_reward_variance"]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>GSM pipeline report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}} .wide{{overflow-x:auto}}
pre{{white-space:pre-wrap;margin:0;max-height:14em;overflow:auto}} img{{max-width:100%}}</style></head><body>
<h1>What SFT and GRPO did to the model</h1>
<p>Greedy decoding; strict = the format the prompt asked for, flexible = last number in the completion.
Intervals are 95% Wilson; p-values are exact McNemar tests on the same problems (vs the base model with the
same prompt, and vs the stage's parent). Seed {provenance['seed']}, config hash {provenance['config_hash']}.</p>
<h2>Did each stage change accuracy and answer format?</h2>
<p>Question: against the base model asked the same way, how did each training stage move strict accuracy,
flexible accuracy and the share of answers in the requested format?</p>
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in findings(rows))}</ul>
<img src="accuracy.png" alt="accuracy per stage, grouped by training method, coloured by eval template">
<div class="wide">{table_html(unique_rows(rows), cols)}</div>
<p>Each evaluation appears once above, under the first experiment using it; comparison.csv repeats a shared
evaluation (the base model, a stage two rows train identically) under every experiment.</p>
<p>Download: <a href="comparison.csv">comparison.csv</a>, <a href="per_example.csv">per_example.csv</a>
(every graded completion), <a href="summary.json">summary.json</a>, <a href="training.json">training.json</a>;
each evaluation's metrics:
{metric_links(evals, out_dir)}.</p>
{template_html(crossed)}
{calibration_html(rows, evals, out_dir)}
{sampling_html(rows, sampling)}
<h2>How did training go?</h2>
<p>Question: did the losses fall, and did GRPO's rewards, their components, KL and completion length move?</p>
{'<img src="training_curves.png" alt="training curves">' if log_files else '<p>No stage was trained.</p>'}
<div class="wide">{table_html(train, train_cols)}</div>
<h2>What do the completions look like?</h2>
<p>Question: what did each stage actually write for the same problems?</p>{examples_html(evals, rows)}
<h2>How was each job run?</h2>
<p>Question: on which device, CPU capability or GPU, weights dtype, autocast and threads was each number made?
(mixed_precision auto picks bf16 only where the GPU or CPU runs it natively.)</p>
<div class="wide">{table_html(runtime_rows(evals, log_files), RUNTIME_COLUMNS)}</div>
<h2>Which code, config and libraries produced these numbers?</h2>
<pre>{html.escape(json.dumps(provenance, indent=2))}</pre></body></html>"""
    (out_dir / "index.html").write_text(page, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build results/report from evaluation outputs.")
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files")
    parser.add_argument("--logs", nargs="*", default=[], help="trainer log_history.json files")
    parser.add_argument("--layout", required=True, help="experiments layout as JSON")
    parser.add_argument("--provenance", default="{}", help="seed, config hash, versions (JSON)")
    parser.add_argument("--out", default="results/report")
    args = parser.parse_args(argv)
    provenance = json.loads(args.provenance)
    provenance.setdefault("seed", None)
    provenance.setdefault("config_hash", None)
    provenance["versions"] = library_versions()
    experiments = {row["name"]: row for row in json.loads(args.layout)}  # declaration order
    write_report(args.metrics, args.logs, experiments, Path(args.out), provenance)
    print(f"wrote {args.out}/index.html")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "snakemake"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


if __name__ == "__main__":
    run_main(main)
