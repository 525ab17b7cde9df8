"""Forgetting, measured as RL's Razor (arXiv 2509.04259) measures it: each trained stage's gain on the task it
trained on beside its change on tasks no stage trains on (data.battery), both against the stage it started from,
and the forward KL(base || model) on the base model's own samples, which that paper finds predicts forgetting."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..stages import KINDS, STAGES


def forgetting_rows(rows: list[dict[str, Any]], trained_set: str, battery: list[str]) -> list[dict[str, Any]]:
    """One row per trained model under the prompt it trained with: its strict-accuracy gain on `trained_set` over
    its parent (with the paired p-value), its loss on each battery set (parent minus model, so a positive number
    is forgotten), their mean, and its KL(base || model) per completion (None where not measured)."""
    by_key = {(r["run"], r["prompt"], r["testset"]): r for r in rows}
    out, seen = [], set()
    for r in rows:
        key = (r["run"], r["prompt"])
        if r["stage"] == "base" or r["testset"] != trained_set or not r["eval_matches_training"] or key in seen:
            continue
        seen.add(key)
        parent = by_key.get((r["parent"], r["prompt"], trained_set))
        if parent is None:
            continue
        row = {"trained": r["trained"], "stage": r["stage"], "method": r["method"],
               "gain": r["accuracy_strict"] - parent["accuracy_strict"], "p_gain": r["p_strict_vs_parent"]}
        lost = []
        for name in battery:
            mine, theirs = by_key.get((r["run"], r["prompt"], name)), by_key.get((r["parent"], r["prompt"], name))
            if mine and theirs:
                lost.append(theirs["accuracy_strict"] - mine["accuracy_strict"])
                row[f"forgot:{name}"], row[f"p:{name}"] = lost[-1], mine["p_strict_vs_parent"]
        row["forgetting"] = sum(lost) / len(lost) if lost else None
        row["kl_from_base"] = r.get("kl_from_base_per_completion")
        out.append(row)
    return out


def forgetting_columns(battery: list[str]) -> list[str]:
    return ["trained", "stage", "method", "gain", "p_gain", "forgetting",
            *(col for name in battery for col in (f"forgot:{name}", f"p:{name}")), "kl_from_base"]


def plot_forgetting(table: list[dict[str, Any]], path: Path) -> bool:
    """Gain against forgetting, and forgetting against KL(base || model), one point per trained model, coloured by
    its stage's kind (SFT, RL, ...); False (no figure) where no battery set was evaluated."""
    points = [r for r in table if r["forgetting"] is not None]
    if not points:
        return False
    from .plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, x, label in ((axes[0], "gain", "gain on the trained task (strict accuracy vs parent)"),
                         (axes[1], "kl_from_base", "KL(base || model) per completion, on the base's samples")):
        for kind, entry in KINDS.items():
            mine = [p for p in points if STAGES[p["stage"]].kind == kind and p[x] is not None]
            if mine:
                ax.scatter([p[x] for p in mine], [p["forgetting"] for p in mine], color=entry.colour,
                           label=entry.label)
            for p in mine:
                ax.annotate(p["trained"], (p[x], p["forgetting"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("forgetting (battery accuracy lost vs parent)")
        ax.legend()
    if not any(p["kl_from_base"] is not None for p in points):
        axes[1].set_title("KL(base || model) not measured (evaluation.kl_to_base: false)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
