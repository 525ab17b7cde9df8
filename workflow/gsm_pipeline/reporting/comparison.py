"""The numbers the report shows: one comparison row per (experiment, stage, eval prompt, test set) with a
column per variant value, per-stage training summaries, plain-sentence findings and summary.json."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from ..grading.metrics import mcnemar_exact
from ..settings.report import ExperimentLayout
from ..stages import REPORT_ORDER, STAGES, by_method
from ..training.methods import RL_METHODS, RLMethod

STAGE_ORDER = list(REPORT_ORDER)
CALIBRATION_COLUMNS = ["confidence_rate", "mean_confidence", "ece", "brier", "auroc", "confidence_correlation"]
# Training-side variant columns (the report job's "variant"), prefixed so eval-side values stand apart.
VARIANT_COLUMNS = {"answer_format": "train_answer_format", "chat_template": "train_chat_template",
                   "finetune": "finetune", "lora_r": "lora_r", "completion_only_loss": "completion_only_loss",
                   "rewards": "rewards", "confidence": "confidence", "rl_from": "rl_from", "rl": "rl",
                   "train_data": "train_data", "shots": "shots", "instruction": "instruction", "seed": "seed",
                   "variant_of": "variant_of"}


def row_key(r: dict[str, Any]) -> tuple[str, str, str]:
    """Which evaluation a comparison row shows: (run, prompt, test set)."""
    return r["run"], r["prompt"], r["testset"]


def paired(first: dict, second: dict | None, field: str) -> float | None:
    """Exact McNemar p-value of `field` on the problems both evaluations share."""
    if second is None or first is second:
        return None
    ids = sorted(set(first["rows"]) & set(second["rows"]))
    return mcnemar_exact([first["rows"][i][field] for i in ids], [second["rows"][i][field] for i in ids])["p_value"]


def lm_eval_columns(ev: dict[str, Any]) -> dict[str, Any]:
    """lm-eval's two graders (grading/harness.py) beside ours: accuracy, 95% interval, and on how many problems
    each differs from ours; empty for an evaluation graded before lm-eval's graders were recorded."""
    out: dict[str, Any] = {}
    for theirs, ours in (("lmeval_strict", "strict"), ("lmeval_flexible", "flexible")):
        if f"accuracy_{theirs}" not in ev:
            out.update({f"accuracy_{theirs}": None, f"{theirs}_ci95_low": None, f"{theirs}_ci95_high": None,
                        f"{theirs}_differs_from_ours": None})
            continue
        rows = ev["rows"].values()
        out.update({f"accuracy_{theirs}": ev[f"accuracy_{theirs}"],
                    f"{theirs}_ci95_low": ev[f"accuracy_{theirs}_ci95"][0],
                    f"{theirs}_ci95_high": ev[f"accuracy_{theirs}_ci95"][1],
                    f"{theirs}_differs_from_ours": sum(r[f"correct_{theirs}"] != r[f"correct_{ours}"] for r in rows)})
    return out


def method(stage: str, variant: dict[str, Any]) -> str:
    """Training method in a few words: stage, train template and, for a stage trained on targets (its job has
    completion_only_loss), what the loss covered."""
    if stage == "base":
        return "base (prompting)"
    name = variant.get("rl", "grpo") if by_method(stage) else stage  # the RL stage is named by its method
    text = f"{name} {'chat' if variant['chat_template'] else 'raw'}"
    if "completion_only_loss" in STAGES[stage].entry.job_model().model_fields:
        text += " answer-loss" if variant["completion_only_loss"] else " full-loss"
    return text


def kl_columns(ev: dict[str, Any]) -> dict[str, float | None]:
    """KL between the model and the base measured at evaluation (generation/divergence.py), both ways: 0 for the
    base itself, None where the evaluation did not measure it."""
    out = {}
    for key in ("kl_to_base", "kl_from_base"):  # KL(model || base) on its greedy completions; KL(base || model)
        kl = {"per_token": 0.0, "per_completion": 0.0} if ev["run"] == "base" else ev.get(key) or {}
        out |= {f"{key}_per_token": kl.get("per_token"), f"{key}_per_completion": kl.get("per_completion")}
    return out


def comparison_rows(evals: list[dict[str, Any]], experiments: dict[str, ExperimentLayout],
                    names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A shared evaluation (base, or a stage trained identically by an earlier row) repeats under each
    experiment that uses it; p-values compare with the base model and the parent stage asked the same way."""
    by_key = {(e["run"], e["prompt_key"], e["testset"]): e for e in evals}
    rows = []
    for name, layout in experiments.items():
        variant = layout.variant
        for item in sorted(layout.evaluations, key=lambda i: STAGE_ORDER.index(i.stage)):
            for testset in layout.testsets:
                ev = by_key.get((item.run, item.prompt, testset))
                if ev is None:
                    continue
                base = by_key.get(("base", item.prompt, testset))
                par = by_key.get((item.parent_run, item.prompt, testset))
                asked = ev["prompt"]
                rows.append({
                    "experiment": name, "stage": item.stage, "testset": testset, "prompt": item.prompt,
                    "prompt_without_template": item.prompt_without_template,
                    "method": method(item.stage, variant),
                    "trained": (names or {}).get(item.run, "base model" if item.stage == "base" else item.run),
                    "eval_chat_template": asked["chat_template"], "eval_answer_format": asked["answer_format"],
                    "eval_matches_training": item.prompt == layout.prompt_key,
                    **{col: (",".join(variant[k]) if isinstance(variant.get(k), list) else variant.get(k))
                       for k, col in VARIANT_COLUMNS.items()},
                    **{f"swept:{k}": v for k, v in layout.swept.items()},
                    "decoding": ev["decoding"], "max_new_tokens": ev["max_new_tokens"], "n": ev["n"],
                    "accuracy_strict": ev["accuracy_strict"], "ci95_low": ev["accuracy_strict_ci95"][0],
                    "ci95_high": ev["accuracy_strict_ci95"][1], "accuracy_flexible": ev["accuracy_flexible"],
                    "flex_ci95_low": ev["accuracy_flexible_ci95"][0], "flex_ci95_high": ev["accuracy_flexible_ci95"][1],
                    "answer_rate": ev["answer_rate"], "thinking_rate": ev["thinking_rate"],
                    "truncation_rate": ev["truncation_rate"], "mean_completion_tokens": ev["mean_completion_tokens"],
                    "protocol": asked.get("protocol") or "", **lm_eval_columns(ev),
                    "p_strict_vs_base": paired(ev, base, "correct_strict"),
                    "p_flexible_vs_base": paired(ev, base, "correct_flexible"),
                    "p_answer_rate_vs_base": paired(ev, base, "has_answer"),
                    "p_strict_vs_parent": paired(ev, par, "correct_strict") if item.stage != "base" else None,
                    **kl_columns(ev),
                    "run": item.run, "parent": "" if item.stage == "base" else item.parent_run,
                    **{k: (ev.get("calibration") or {}).get(k) for k in CALIBRATION_COLUMNS},
                    **{k: v for k, v in ev.get("sampling", {}).items() if "@" in k},
                })
    return rows


History = tuple[str, list[dict[str, Any]]]  # (run, trainer log history)


def read_history(path: str) -> History:
    """(run, trainer log history) of results/<stage>-<chain>/log_history.json."""
    return Path(path).parent.name, json.loads(Path(path).read_text())


def run_methods(experiments: dict[str, ExperimentLayout]) -> dict[str, RLMethod]:
    """The RL method (training/methods.py) that trained each RL stage folder, from the rows that train it."""
    return {st.run: RL_METHODS[e.variant.get("rl", "grpo")] for e in experiments.values()
            for st in e.stages if by_method(st.stage)}


def objective(history: list[dict[str, Any]]) -> str:
    """The RL objective an RL stage's runtime record states ("loss dapo, scale_rewards group, beta 0"), or ""."""
    found = next((h["runtime"].get("objective") for h in history[:1] if "runtime" in h), None) or {}
    return ", ".join(f"{'loss' if key == 'loss_type' else key} {value:g}" if isinstance(value, float) else
                     f"{'loss' if key == 'loss_type' else key} {value}" for key, value in found.items())


def run_names(experiments: dict[str, ExperimentLayout], histories: list[History] | None = None) -> dict[str, str]:
    """Each trained folder as the config names it: the rows that train it and the stage's label ("tagged,
    tagged_conf prep SFT"; "tagged GRPO (loss dapo, scale_rewards group, beta 0)", what the RL stage optimised
    as its record states), for legends and tables; the folder itself only where a path is needed."""
    rows: dict[str, list[str]] = {}
    stages: dict[str, str] = {}
    for name, layout in experiments.items():
        for st in layout.stages:
            rows.setdefault(st.run, []).append(name)
            stages[st.run] = st.stage
    methods = run_methods(experiments)
    objectives = {run: objective(history) for run, history in histories or []}
    return {run: f"{', '.join(names)} {stage_label(stages[run], {methods[run]} if run in methods else set())}"
                 + (f" ({objectives[run]})" if objectives.get(run) else "")
            for run, names in rows.items()}


def stage_label(stage: str, methods: list[RLMethod] | set[RLMethod]) -> str:
    """How the report names a stage: the table's label, the RL stage by the methods that trained it here."""
    if stage == "base":
        return "base"
    if by_method(stage) and methods:
        return "/".join(sorted({m.label for m in methods}))
    return STAGES[stage].label


def logged(history: list[dict[str, Any]], method: RLMethod, quantity: str) -> list[float] | str:
    """A quantity's per-step values as `method` logs it, or the words saying it does not ("not logged by RLOO")."""
    key = method.log_key(quantity)
    values = [h[key] for h in history if key and "loss" in h and key in h]
    return values or f"not logged by {method.label}"


def training_rows(histories: list[History], methods: dict[str, RLMethod]) -> list[dict[str, Any]]:
    """Per trained stage (`read_history` of each): steps, losses and, for an RL stage, its method, rewards and the
    share of prompt groups with signal, read under the keys its method logs them by."""
    out = []
    for run, history in histories:
        steps = [h for h in history if "loss" in h]
        row = {"run": run, "steps": max((h.get("step", 0) for h in history), default=0),
               "first_loss": steps[0]["loss"] if steps else None, "last_loss": steps[-1]["loss"] if steps else None}
        method = methods.get(run)
        if method is not None:
            rewards, zero_std = logged(history, method, "reward"), logged(history, method, "reward_std_zero")
            row["method"] = method.label
            row["objective"] = objective(history)
            if isinstance(rewards, str):
                row.update({"first_reward": rewards, "last_reward": rewards, "mean_reward": rewards})
            else:
                row.update({"first_reward": rewards[0], "last_reward": rewards[-1],
                            "mean_reward": sum(rewards) / len(rewards)})
            row["share_groups_with_reward_variance"] = (
                zero_std if isinstance(zero_std, str) else 1 - sum(zero_std) / len(zero_std))
            for quantity in ("zero_std_all_correct", "zero_std_all_wrong"):  # means over steps, as the share above
                values = logged(history, method, quantity)
                row[quantity.replace("std", "variance")] = (
                    values if isinstance(values, str) else sum(values) / len(values))
            entropy = logged(history, method, "entropy")
            row["first_entropy"], row["last_entropy"] = (
                (entropy, entropy) if isinstance(entropy, str) else (entropy[0], entropy[-1]))
        out.append(row)
    return out


RUNTIME_COLUMNS = ["job", "device", "processor", "cpu_capability", "cpu_native_bf16", "dtype", "autocast",
                   "precision_reason", "torch_threads", "gradient_checkpointing", "distributed", "engine"]


def runtime_rows(evals: list[dict[str, Any]], histories: list[History]) -> list[dict[str, Any]]:
    """How each job ran (device, CPU capability or GPU, dtype, autocast, threads), from the record it kept."""
    records = []
    for run, history in histories:
        records += [(f"train {run}", h["runtime"]) for h in history[:1] if "runtime" in h]
    records += [(f"evaluate {e['run']} {e['prompt_key']} {e['testset']}", e["runtime"]) for e in evals
                if "runtime" in e]
    return [{**{k: info.get(k) for k in RUNTIME_COLUMNS}, "job": job,
             "processor": info.get("gpu") or info.get("cpu")} for job, info in records]


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per trained stage, eval prompt and test set: what changed against base."""
    base = {(r["experiment"], r["prompt"], r["testset"]): r for r in rows if r["stage"] == "base"}
    out = []
    for r in rows:
        b = base.get((r["experiment"], r["prompt"], r["testset"]))
        if r["stage"] == "base" or b is None:
            continue
        asked = "" if r["eval_matches_training"] else f" asked as {r['prompt']}"
        out.append(f"{r['experiment']}/{r['stage']}{asked} on {r['testset']} (n={r['n']}): "
                   f"answer-format rate {b['answer_rate']:.0%} -> {r['answer_rate']:.0%} "
                   f"(p={r['p_answer_rate_vs_base']:.2g}), strict accuracy {b['accuracy_strict']:.0%} -> "
                   f"{r['accuracy_strict']:.0%} (p={r['p_strict_vs_base']:.2g}), flexible "
                   f"{b['accuracy_flexible']:.0%} -> {r['accuracy_flexible']:.0%} (p={r['p_flexible_vs_base']:.2g})")
    return out


REPLICATE = "seed"  # a swept key with this leaf repeats the same experiment; any other swept key changes it


def is_replicate(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == REPLICATE


def over_replicates(values: list[float]) -> dict[str, float | None]:
    """Mean, sample SD and the 95% Student-t interval of the mean over replicate runs (the run-to-run spread a
    single run's Wilson interval over problems leaves out), kept within [0, 1]; none from one run."""
    from scipy.stats import t

    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean_accuracy_strict": mean, "sd_accuracy_strict": None, "ci95_low": None, "ci95_high": None}
    sd = statistics.stdev(values)
    low, high = t.interval(0.95, len(values) - 1, loc=mean, scale=sd / len(values) ** 0.5) if sd else (mean, mean)
    return {"mean_accuracy_strict": mean, "sd_accuracy_strict": sd, "ci95_low": max(0.0, float(low)),
            "ci95_high": min(1.0, float(high))}


SWEEP_COLUMNS = ["variant_of", "stage", "prompt", "testset", "over", "holding", "runs", "summary",
                 "mean_accuracy_strict", "ci95_low", "ci95_high", "sd_accuracy_strict", "min", "max"]


def sweeps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sweep (the rows one row expanded into), stage, prompt and test set, each model counted once (a base or
    parent shared by every row is one run, not N). Over replicate keys (seeds) the rows are repeats of one
    experiment: mean, sample SD and a 95% t interval, for each combination of the other swept values. Over any
    other key (a learning rate) they are different experiments: only their range, labelled so."""
    groups: dict[tuple, dict[str, float]] = {}
    members: dict[tuple, int] = {}
    for r in rows:
        if not r["variant_of"]:
            continue
        swept = {k.removeprefix("swept:"): v for k, v in r.items() if k.startswith("swept:")}
        replicate = any(is_replicate(k) for k in swept)
        over = ", ".join(k for k in swept if is_replicate(k) == replicate)
        holding = ", ".join(f"{k}={v}" for k, v in swept.items() if replicate and not is_replicate(k))
        key = (r["variant_of"], r["stage"], r["prompt"], r["testset"], over, holding, replicate)
        groups.setdefault(key, {})[r["run"]] = r["accuracy_strict"]
        members[key] = members.get(key, 0) + 1
    out = []
    for key, by_run in groups.items():
        variant_of, stage, prompt, testset, over, holding, replicate = key
        values = list(by_run.values())
        if len(values) == 1:
            summary = "one model, shared by every row" if members[key] > 1 else "one row"
        elif replicate:
            summary = "mean and 95% t interval over replicates"
        else:
            summary = "range over different settings (not replicates: no interval)"
        stats = over_replicates(values) if replicate else {
            "mean_accuracy_strict": None, "sd_accuracy_strict": None, "ci95_low": None, "ci95_high": None}
        out.append({"variant_of": variant_of, "stage": stage, "prompt": prompt, "testset": testset, "over": over,
                    "holding": holding, "runs": len(values), "summary": summary, **stats, "min": min(values),
                    "max": max(values)})
    return out


def summary(rows: list[dict[str, Any]], provenance: dict[str, Any]) -> dict[str, Any]:
    """summary.json: the best row per test set and stage, and mean, interval and spread over each sweep's rows."""
    best = {}
    for r in rows:
        key = f"{r['testset']}/{r['stage']}"
        if key not in best or r["accuracy_strict"] > best[key]["accuracy_strict"]:
            best[key] = {k: r[k] for k in ("experiment", "prompt", "accuracy_strict", "accuracy_flexible",
                                           "answer_rate", "n")}
    return {"rows": len(rows), "experiments": sorted({r["experiment"] for r in rows}),
            "best_by_testset_and_stage": best, "sweeps": sweeps(rows),
            "config_hash": provenance.get("config_hash"), "seed": provenance.get("seed")}
