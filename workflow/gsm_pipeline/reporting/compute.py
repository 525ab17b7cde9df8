"""The report's compute axis: what each stage cost, and every evaluated point's cumulative compute from the base.

Per trained stage, from its log history (the runtime record first, then one entry per optimizer step) and its
Snakemake benchmark file: optimizer steps, tokens trained (the trainer's `num_tokens`: prompt and completion tokens
through forward and backward), tokens generated (rollouts: mean completion length times the completions per step;
what a stage samples before its first step), FLOPs estimated as 6·N per trained token plus 2·N per generated
token (N = the model's distinct parameters), plus a teacher's forward pass, 2·N_teacher per trained token, where
a stage learns from one (reference-model passes are not counted), wall seconds and peak resident
memory as Snakemake measured the job, peak GPU memory as the job's PyTorch allocator reserved it, and GPU-hours (the
stage's GPUs times its wall time; none on a CPU). A point inside a stage (a learning-curve step) gets its stage's
tokens up to that step and a share of its wall time pro-rated by steps. A stage's point adds everything its
ancestors cost. Confidence targets are sampled once per row by their own job: their generated tokens and wall time
are charged to the first stage of a chain that trains on them (at the stage's step 0), not again to its descendants.
A stage taught by another stage of its row (a teacher in results/) is charged that stage's own training at its step
0 as well: the ancestors the two share are counted once, on the chain.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..grading.metrics import rate_interval
from ..settings.report import ExperimentLayout
from ..stages import STAGES
from ..training.methods import RLMethod
from .comparison import kl_columns


def read_benchmark(path: Path) -> dict[str, float] | None:
    """Snakemake's benchmark TSV (seconds, max_rss in MB); None when the job left none (e.g. run by hand)."""
    if not path.is_file():
        return None
    with path.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return None
    last = rows[-1]  # a rerun appends nothing; `--benchmark-repeats` would add rows
    rss = last.get("max_rss", "NA")
    return {"seconds": float(last["s"]), "peak_rss_gb": None if rss in ("NA", "-") else float(rss) / 1024}


def stage_cost(run: str, history: list[dict[str, Any]], benchmarks: Path, gpus: int,
               method: RLMethod | None = None) -> dict[str, Any]:
    """What one trained stage cost, with its cumulative tokens at every optimizer step, and the confidence
    targets it trained on (their job's generated tokens and wall time), if any. An RL stage's generated tokens
    are read under the key its `method` logs completion lengths by; where it logs none, they are unknown (None,
    and so are its FLOPs), never 0. Benchmark files are read by their conventional paths under `benchmarks` (they
    are not outputs)."""
    runtime = history[0].get("runtime", {}) if history else {}
    benchmark = read_benchmark(benchmarks / f"{run}.tsv")
    targets = runtime.get("confidence_targets")
    if targets:
        sampled = read_benchmark(benchmarks / "confidence_targets" / f"{targets['name']}.tsv")
        targets = {"name": targets["name"], "generated_tokens": float(targets.get("generated_tokens") or 0),
                   "wall_s": sampled["seconds"] if sampled else None}
    n = runtime.get("parameters") or 0
    teacher = (runtime.get("teacher") or {}).get("parameters") or 0
    per_step = runtime.get("samples_per_step") or 0
    stage = STAGES.get(run.rsplit("-", 1)[0])
    own_length = stage.entry.completion_length if stage else ""
    length = method.log_key("completion_length") if method else own_length or None
    unknown = (method is not None or bool(own_length)) and not any(length in e for e in history if "loss" in e)
    # what a job samples before its first step is the stage's from step 0 (its own, not a parent's); `rft`: the
    # record's name in logs written before it was shared by every kind
    sampled = float((runtime.get("sampled") or runtime.get("rft") or {}).get("generated_tokens") or 0.0)
    taught_by = Path((runtime.get("teacher") or {}).get("model") or "")
    trained, generated, by_step = 0.0, sampled, {0: (0.0, sampled)}
    for entry in history:
        if "step" in entry and "loss" in entry:
            trained = float(entry.get("num_tokens", trained))
            generated += float(entry.get(length, 0.0)) * per_step if length else 0.0
            by_step[int(entry["step"])] = (trained, None if unknown else generated)
    generated = None if unknown else generated
    steps = max(by_step)
    wall = benchmark["seconds"] if benchmark else None
    return {"run": run, "steps": steps, "parameters": n, "by_step": by_step, "wall_s": wall,
            "gpus": gpus, "gpu_hours": gpus * wall / 3600 if gpus and wall is not None else None,
            "peak_rss_gb": benchmark["peak_rss_gb"] if benchmark else None,
            "peak_gpu_memory_gb": runtime.get("peak_gpu_memory_gb"), "targets": targets,
            "trained_tokens": trained, "generated_tokens": generated, "flops": flops(n, trained, generated, teacher),
            "teacher_parameters": teacher, "method": method.label if method else None,
            "teacher_run": taught_by.parent.name if taught_by.parent.parent.name == "results" else None}


def flops(parameters: int, trained: float, generated: float | None, teacher: int = 0) -> float | None:
    if generated is None:
        return None
    return 6.0 * parameters * trained + 2.0 * parameters * generated + 2.0 * teacher * trained


def at_step(cost: dict[str, Any], step: int) -> dict[str, float]:
    """A stage's own compute up to one of its steps (the last logged step at or before it)."""
    logged = max(s for s in cost["by_step"] if s <= step)
    trained, generated = cost["by_step"][logged]
    share = step / cost["steps"] if cost["steps"] else 0.0
    return {"steps": step, "trained_tokens": trained, "generated_tokens": generated,
            "flops": flops(cost["parameters"], trained, generated, cost.get("teacher_parameters", 0)),
            "wall_s": cost["wall_s"] * share if cost["wall_s"] is not None else None}


ZERO = {"steps": 0, "trained_tokens": 0.0, "generated_tokens": 0.0, "flops": 0.0, "wall_s": 0.0}


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if a[k] is None or b[k] is None else a[k] + b[k]) for k in ZERO}


def curve_points(experiment: ExperimentLayout, costs: dict[str, dict[str, Any]],
                 metrics: dict[tuple[str, str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """One experiment's points in training order (base, each stage's kept steps, the stage's end), per test set:
    cumulative compute from the base, strict accuracy with its 95% interval and width, and answer-format rate."""
    prompt = experiment.prompt_key
    before: dict[str, dict[str, Any]] = {"base": dict(ZERO)}
    charged: dict[str, bool] = {"base": False}  # whether the chain up to a run has paid for its targets
    marks = [("base", "base", 0, "base", None, dict(ZERO))]
    for st in experiment.stages:
        cost = costs.get(st.run)
        if cost is None:
            continue
        start = before.get(st.parent_run, dict(ZERO))
        targets, paid = cost["targets"], charged.get(st.parent_run, False)
        if targets and not paid:
            start = _add(start, {**ZERO, "generated_tokens": targets["generated_tokens"], "wall_s": targets["wall_s"],
                                 "flops": flops(cost["parameters"], 0.0, targets["generated_tokens"])})
        charged[st.run] = paid or bool(targets)
        teacher = costs.get(cost.get("teacher_run") or "")
        if teacher is not None:  # the teacher stage's own training, once
            start = _add(start, at_step(teacher, teacher["steps"]))
        steps = [c.step for c in experiment.curve if c.stage_run == st.run]
        marks += [(st.stage, f"{st.run}/step-{s}", s, st.run, st.parent_run, _add(start, at_step(cost, s)))
                  for s in steps]
        before[st.run] = _add(start, at_step(cost, cost["steps"]))
        marks.append((st.stage, st.run, cost["steps"], st.run, st.parent_run, before[st.run]))
    points = []
    for stage, run, step, stage_run, parent_run, total in marks:
        for testset in experiment.testsets:
            ev = metrics.get((run, prompt, testset))
            if ev is None:
                continue
            fmt_low, fmt_high = rate_interval(ev["answer_rate"], ev["n"])
            low, high = ev["accuracy_strict_ci95"]
            points.append({"experiment": experiment.name, "stage": stage, "run": run, "stage_run": stage_run,
                           "parent_run": parent_run, "stage_step": step, "final": "/step-" not in run,
                           "testset": testset, "n": ev["n"],
                           "optimizer_steps": total["steps"], "flops": total["flops"], "wall_s": total["wall_s"],
                           "trained_tokens": total["trained_tokens"], "generated_tokens": total["generated_tokens"],
                           "accuracy_strict": ev["accuracy_strict"], "ci95_low": low, "ci95_high": high,
                           "ci95_width": high - low, "answer_rate": ev["answer_rate"], "answer_ci95_low": fmt_low,
                           "answer_ci95_high": fmt_high, "kl_to_base": kl_columns(ev)["kl_to_base_per_token"]})
    return points


def cost_table(costs: dict[str, dict[str, Any]], stages: dict[str, str], names: dict[str, str] | None = None
               ) -> list[dict[str, Any]]:
    """One row per trained stage, named as the config names it (rows and stage), its folder beside: the cost
    table of the report."""
    keys = ("run", "steps", "wall_s", "gpus", "gpu_hours", "trained_tokens", "generated_tokens", "flops",
            "peak_rss_gb", "peak_gpu_memory_gb", "parameters", "teacher_parameters")
    def shown(cost: dict[str, Any], key: str) -> Any:  # an RL stage whose method logs no completion lengths
        unknown = cost[key] is None and key in ("generated_tokens", "flops") and cost["method"]
        return f"not logged by {cost['method']}" if unknown else cost[key]

    return [{"trained": (names or {}).get(run, run), "stage": stages.get(run, ""), **{k: shown(cost, k) for k in keys},
             "confidence_targets": cost["targets"]["name"] if cost["targets"] else "",
             "target_tokens": cost["targets"]["generated_tokens"] if cost["targets"] else 0.0}
            for run, cost in costs.items()]
