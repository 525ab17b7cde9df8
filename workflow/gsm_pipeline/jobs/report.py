"""The final report: comparison.csv plus one HTML page with charts and completions.

Every evaluation's metrics.json carries its labels (experiment, stage, test set,
prompt, parent run), so the report needs nothing but the files it is given.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import run_main
from ..reporting.comparison import (
    History,
    comparison_rows,
    read_history,
    run_methods,
    run_names,
    summary,
    training_rows,
)
from ..reporting.compute import cost_table, curve_points, stage_cost
from ..reporting.coverage import COVERAGE_COLUMNS, coverage, plot_pass_at_k
from ..reporting.dynamics import plot_dynamics, plot_kl_at_evaluation
from ..reporting.forgetting import forgetting_columns, forgetting_rows, plot_forgetting
from ..reporting.page import compute_context, eval_key, page_context, render_page
from ..reporting.plots import (
    plot_accuracy,
    plot_compute_curves,
    plot_reliability,
    plot_sampling,
    plot_template_scatter,
    plot_training_curves,
)
from ..rows import load_rows
from ..settings.report import ExperimentLayout, ReportJob


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


def per_example_table(evals: list[dict[str, Any]]):
    """Every graded completion, greedy and sampled, with the run and test set it belongs to."""
    import pandas as pd

    keep = ["id", "gold", "completion", "extracted_strict", "extracted_flexible", "correct_strict",
            "correct_flexible", "extracted_lmeval_strict", "extracted_lmeval_flexible", "correct_lmeval_strict",
            "correct_lmeval_flexible", "confidence", "truncated", "completion_tokens"]
    frames = []
    for e in evals:
        for kind, rows in (("greedy", list(e["rows"].values())), ("sampled", e["samples"])):
            if rows:
                frame = pd.DataFrame(rows)
                frame = frame.reindex(columns=keep + (["sample", "score"] if kind == "sampled" else []))
                frames.append(frame.assign(run=e["run"], prompt=e["prompt_key"], testset=e["testset"],
                                           decoding=kind))
    return pd.concat(frames, ignore_index=True)


def compute_axis(evals: list[dict[str, Any]], histories: list[History], experiments: dict[str, ExperimentLayout],
                 benchmarks: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(every evaluated point with its cumulative compute, each trained run's cost), from the training logs and
    the training jobs' Snakemake benchmark files (read by their conventional path: benchmarks are not outputs)."""
    stages = {st.run: st for e in experiments.values() for st in e.stages}
    methods = run_methods(experiments)
    costs = {}
    for run, history in histories:
        gpus = stages[run].gpus if run in stages else 0
        costs[run] = stage_cost(run, history, benchmarks, gpus, methods.get(run))
    metrics = {eval_key(e): e for e in evals}
    points = [p for e in experiments.values() for p in curve_points(e, costs, metrics)]
    return points, costs


def write_report(metrics_files: list[str], log_files: list[str], experiments: dict[str, ExperimentLayout],
                 out_dir: Path, provenance: dict[str, Any], benchmarks: Path = Path("results/benchmarks"),
                 battery: list[str] | None = None) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    evals = load_evaluations(metrics_files)
    histories = [read_history(p) for p in log_files]
    points, run_costs = compute_axis(evals, histories, experiments, benchmarks)
    names = run_names(experiments, histories)
    costs = cost_table(run_costs, {st.run: st.stage for e in experiments.values() for st in e.stages}, names)
    pd.DataFrame(points).to_csv(out_dir / "curve.csv", index=False)
    pd.DataFrame(costs).to_csv(out_dir / "cost.csv", index=False)
    curves = plot_compute_curves(points, out_dir / "curve_compute.png", out_dir / "curve_steps.png")
    rows = comparison_rows(evals, experiments, names)
    pd.DataFrame(rows).to_csv(out_dir / "comparison.csv", index=False)
    per_example_table(evals).to_csv(out_dir / "per_example.csv", index=False)
    (out_dir / "summary.json").write_text(json.dumps(summary(rows, provenance), indent=2))
    train = training_rows(histories, run_methods(experiments))
    (out_dir / "training.json").write_text(json.dumps(train, indent=2))
    plot_accuracy(rows, out_dir / "accuracy.png")
    crossed = plot_template_scatter(rows, out_dir / "template_scatter.png")
    if histories:
        plot_training_curves(histories, run_methods(experiments), out_dir / "training_curves.png", names)
    dynamics = {"training": plot_dynamics(histories, run_methods(experiments), run_costs, out_dir / "dynamics.png",
                                          names),
                "kl": plot_kl_at_evaluation(points, out_dir / "kl_at_evaluation.png")}
    trained_set = next(iter(experiments.values())).testsets[0] if experiments else None  # the in-distribution set
    forgot = forgetting_rows(rows, trained_set, battery or [])
    pd.DataFrame(forgot, columns=forgetting_columns(battery or [])).to_csv(out_dir / "forgetting.csv", index=False)
    forgetting = {"columns": forgetting_columns(battery or []), "rows": forgot, "battery": battery,
                  "trained_set": trained_set} if plot_forgetting(forgot, out_dir / "forgetting.png") else None
    sampling = {eval_key(e): e["sampling"] for e in evals if "sampling" in e}
    solved = None
    if sampling:
        plot_sampling(rows, sampling, out_dir / "sampling.png")
        by_key = {eval_key(e): e for e in evals}
        table = coverage(rows, by_key)
        plot_pass_at_k(rows, by_key, table, out_dir / "pass_at_k.png")
        pd.DataFrame(table, columns=[*COVERAGE_COLUMNS, "run", "base_run"]).to_csv(out_dir / "coverage.csv",
                                                                                   index=False)
        solved = {"columns": COVERAGE_COLUMNS, "rows": table}
    if any(r["confidence"] for r in rows):
        plot_reliability(rows, {eval_key(e): e["calibration_bins"] for e in evals}, out_dir / "calibration.png")
    context = page_context(evals, rows, train, histories, sampling, crossed, out_dir, provenance,
                           compute_context(points, costs, curves), solved, dynamics, forgetting)
    (out_dir / "index.html").write_text(render_page(context), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build results/report from evaluation outputs.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files")
    parser.add_argument("--logs", nargs="*", default=[], help="trainer log_history.json files")
    parser.add_argument("--config", required=True, help="the report job: experiments' layout, provenance (JSON)")
    parser.add_argument("--out", default="results/report")
    parser.add_argument("--benchmarks", default="results/benchmarks", help="the training jobs' benchmark files")
    args = parser.parse_args(argv)
    job = ReportJob.parse(args.config)
    provenance = {"seed": None, "config_hash": None, **job.provenance, "versions": library_versions()}
    experiments = {row.name: row for row in job.experiments}  # declaration order
    write_report(args.metrics, args.logs, experiments, Path(args.out), provenance, Path(args.benchmarks),
                 job.battery)
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
