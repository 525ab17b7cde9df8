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

from .data import load_rows
from .errors import run_main
from .metrics import mcnemar_exact
from .plots import STAGE_ORDER, plot_accuracy, plot_reliability, plot_sampling


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
    plot_reliability(rows, {(e["run"], e["testset"]): e["calibration_bins"] for e in evals},
                     out_dir / "calibration.png")
    ordered = sorted(rows, key=lambda r: (r["testset"], STAGE_ORDER.index(r["stage"]), r["confidence"]))
    cols = ["testset", "stage", "experiment", "prompt", "n", "accuracy_strict", "ci95_low", "ci95_high",
            "answer_rate", *CALIBRATION_COLUMNS]
    links = ", ".join(f'<a href="{html.escape(os.path.relpath(Path(e["path"]).parent / "calibration.csv", out_dir))}">'
                      f'{html.escape(e["run"])}/{html.escape(e["testset"])}</a>'
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
                frames.append(frame.assign(run=e["run"], testset=e["testset"], decoding=kind))
    return pd.concat(frames, ignore_index=True)


def paired(first: dict, second: dict | None, field: str) -> float | None:
    """Exact McNemar p-value of `field` on the problems both evaluations share."""
    if second is None or first is second:
        return None
    ids = sorted(set(first["rows"]) & set(second["rows"]))
    return mcnemar_exact([first["rows"][i][field] for i in ids], [second["rows"][i][field] for i in ids])["p_value"]


CALIBRATION_COLUMNS = ["confidence_rate", "mean_confidence", "ece", "brier", "auroc", "confidence_correlation"]


def comparison_rows(evals: list[dict[str, Any]], experiments: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per (experiment, stage, test set); a shared evaluation (base, or a stage trained identically
    by an earlier experiment) repeats under each experiment that uses it."""
    by_run = {(e["run"], e["testset"]): e for e in evals}
    rows = []
    for name, layout in experiments.items():
        base_run = layout["runs"]["base"]
        for stage in [s for s in STAGE_ORDER if s in layout["runs"]]:
            run = layout["runs"][stage]
            parent = base_run if stage == "base" else layout["parents"][stage]
            for testset in layout["testsets"]:
                ev = by_run.get((run, testset))
                if ev is None:
                    continue
                base, par = by_run.get((base_run, testset)), by_run.get((parent, testset))
                calibration = ev.get("calibration") or {}
                rows.append({
                    "experiment": name, "stage": stage, "testset": testset, "prompt": ev["prompt_key"],
                    "confidence": layout.get("confidence", False),
                    "shots": 0, "decoding": ev["decoding"], "max_new_tokens": ev["max_new_tokens"],
                    "seed": ev["seed"], "n": ev["n"],
                    "accuracy_strict": ev["accuracy_strict"], "ci95_low": ev["accuracy_strict_ci95"][0],
                    "ci95_high": ev["accuracy_strict_ci95"][1],
                    "accuracy_flexible": ev["accuracy_flexible"],
                    "flex_ci95_low": ev["accuracy_flexible_ci95"][0], "flex_ci95_high": ev["accuracy_flexible_ci95"][1],
                    "answer_rate": ev["answer_rate"], "thinking_rate": ev["thinking_rate"],
                    "truncation_rate": ev["truncation_rate"], "mean_completion_tokens": ev["mean_completion_tokens"],
                    "p_strict_vs_base": paired(ev, base, "correct_strict"),
                    "p_flexible_vs_base": paired(ev, base, "correct_flexible"),
                    "p_answer_rate_vs_base": paired(ev, base, "has_answer"),
                    "p_strict_vs_parent": paired(ev, par, "correct_strict") if stage != "base" else None,
                    "run": run, "parent": "" if stage == "base" else parent,
                    **{k: calibration.get(k) for k in CALIBRATION_COLUMNS},
                    **{k: v for k, v in ev.get("sampling", {}).items() if "@" in k},
                })
    return rows


def training_rows(log_files: list[str]) -> list[dict[str, Any]]:
    """Per trained stage: steps, losses and, for GRPO, rewards and the share of prompt groups with signal."""
    out = []
    for path in log_files:
        history = json.loads(Path(path).read_text())
        steps = [h for h in history if "loss" in h]
        run = "/".join(Path(path).parts[-3:-1])  # results/<owner>/<stage>/log_history.json
        row = {"run": run, "steps": max((h.get("step", 0) for h in history), default=0),
               "first_loss": steps[0]["loss"] if steps else None, "last_loss": steps[-1]["loss"] if steps else None}
        zero_std = [h["frac_reward_zero_std"] for h in steps if "frac_reward_zero_std" in h]
        if zero_std:
            rewards = [h["reward"] for h in steps if "reward" in h]
            row.update({"share_groups_with_reward_variance": 1 - sum(zero_std) / len(zero_std),
                        "first_reward": rewards[0], "last_reward": rewards[-1],
                        "mean_reward": sum(rewards) / len(rewards)})
        out.append(row)
    return out


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per trained stage and test set: what changed against base, and how sure we are."""
    base = {(r["experiment"], r["testset"]): r for r in rows if r["stage"] == "base"}
    out = []
    for r in rows:
        b = base.get((r["experiment"], r["testset"]))
        if r["stage"] == "base" or b is None:
            continue
        out.append(f"{r['experiment']}/{r['stage']} on {r['testset']} (n={r['n']}): "
                   f"answer-format rate {b['answer_rate']:.0%} -> {r['answer_rate']:.0%} "
                   f"(p={r['p_answer_rate_vs_base']:.2g}), strict accuracy {b['accuracy_strict']:.0%} -> "
                   f"{r['accuracy_strict']:.0%} (p={r['p_strict_vs_base']:.2g}), flexible "
                   f"{b['accuracy_flexible']:.0%} -> {r['accuracy_flexible']:.0%} (p={r['p_flexible_vs_base']:.2g})")
    return out


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
    lost = [{"run": r["run"], "testset": r["testset"], "lost_by_vote": len(m["lost_by_vote"]),
             "lost_by_scorer": len(m["lost_by_scorer"]),
             "questions": " ".join(sorted(set(m["lost_by_vote"]) | set(m["lost_by_scorer"])))}
            for r in rows if (m := sampling.get((r["run"], r["testset"])))]
    return (f"<h2>Does sampling help?</h2><p>{first['samples']} samples per question at temperature "
            f"{first['temperature']}; best-of-n ranks by {html.escape(first['scorer'])}; strict extraction. "
            "Curves use the first n samples.</p><img src=\"sampling.png\" alt=\"maj@n, best-of-n, pass@n\">"
            "<h3>Where a correct sample existed but the vote or the scorer chose wrong</h3>"
            f"<div class=\"wide\">{table_html(lost, list(lost[0]) if lost else [])}</div>")


def examples_html(evals: list[dict[str, Any]], rows: list[dict[str, Any]], per_set: int = 3) -> str:
    """The same problems' completions across every stage, side by side."""
    by_key = {(e["run"], e["testset"]): e for e in evals}
    parts = []
    for exp, testset in sorted({(r["experiment"], r["testset"]) for r in rows}):
        runs = [r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)]
        evs = [by_key[(r["run"], testset)] for r in runs]
        ids = sorted(set.intersection(*(set(e["rows"]) for e in evs)))[:per_set]
        for pid in ids:
            q = evs[0]["rows"][pid]
            parts.append(f"<h4>{html.escape(exp)} / {html.escape(testset)} / {html.escape(pid)} "
                         f"(gold {html.escape(str(q['gold']))})</h4><p>{html.escape(q['question'])}</p><table>")
            for r, e in zip(runs, evs):
                ex = e["rows"][pid]
                mark = "correct" if ex["correct_strict"] else "wrong"
                parts.append(f"<tr><td>{r['stage']}<br><i>{mark}</i></td>"
                             f"<td><pre>{html.escape(ex['completion'][:800])}</pre></td></tr>")
            parts.append("</table>")
    return "\n".join(parts)


def metric_links(evals: list[dict[str, Any]], out_dir: Path) -> str:
    return ", ".join(f'<a href="{html.escape(os.path.relpath(e["path"], out_dir))}">'
                     f'{html.escape(e["run"])}/{html.escape(e["testset"])}</a>' for e in evals)


def write_report(metrics_files: list[str], log_files: list[str], experiments: dict[str, dict],
                 out_dir: Path, provenance: dict[str, Any]) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    evals = load_evaluations(metrics_files)
    rows = comparison_rows(evals, experiments)
    pd.DataFrame(rows).to_csv(out_dir / "comparison.csv", index=False)
    per_example_table(evals).to_csv(out_dir / "per_example.csv", index=False)
    train = training_rows(log_files)
    (out_dir / "training.json").write_text(json.dumps(train, indent=2))
    plot_accuracy(rows, out_dir / "accuracy.png")
    sampling = {(e["run"], e["testset"]): e["sampling"] for e in evals if "sampling" in e}
    if sampling:
        plot_sampling(rows, sampling, out_dir / "sampling.png")
    cols = ["experiment", "stage", "testset", "prompt", "shots", "n", "accuracy_strict", "ci95_low", "ci95_high",
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
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in findings(rows))}</ul>
<img src="accuracy.png" alt="accuracy per stage">
<div class="wide">{table_html(rows, cols)}</div>
<p>Download: <a href="comparison.csv">comparison.csv</a>, <a href="per_example.csv">per_example.csv</a>
(every graded completion), <a href="training.json">training.json</a>; each evaluation's metrics:
{metric_links(evals, out_dir)}.</p>
{calibration_html(rows, evals, out_dir)}
{sampling_html(rows, sampling)}
<h2>How did training go?</h2><div class="wide">{table_html(train, train_cols)}</div>
<h2>What do the completions look like?</h2>{examples_html(evals, rows)}
<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2))}</pre></body></html>"""
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
    write_report(args.metrics, args.logs, json.loads(args.layout), Path(args.out), provenance)
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
