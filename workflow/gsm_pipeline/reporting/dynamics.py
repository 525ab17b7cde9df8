"""What happened during RL: the training-dynamics panel. Per RL stage, from its log history under the keys its
method logs them by (training/methods.py): the share of sampled completions that are right (logged by our
rewards, so a random-reward row shows it too), policy entropy (its early collapse tracks accuracy, arXiv 2505.22617),
completion length, the share of prompt groups whose reward has no variance split into all-right and all-wrong
(the groups GRPO learns nothing from, 2504.11343; the split is logged by our rewards, the total by TRL) and the
clip ratio; against the stage's optimizer steps and against the FLOPs it spent (reporting/compute.py's count)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..training.methods import RLMethod
from .comparison import History
from .compute import at_step

# (panel title, [(report quantity, line style, marker, label)]); the split's markers show where it lies on the total
PANELS = [("samples strictly right (whatever the reward)", [("correct_strict", "-", ".", "")]),
          ("policy entropy (nats per token)", [("entropy", "-", ".", "")]),
          ("mean completion length (tokens)", [("completion_length", "-", ".", "")]),
          ("groups with zero reward variance", [("reward_std_zero", "-", ".", "all"),
                                                ("zero_std_all_correct", "--", "^", "all right"),
                                                ("zero_std_all_wrong", ":", "v", "all wrong")]),
          ("clip ratio (importance ratio clipped)", [("clip_ratio", "-", ".", "")])]


def series(history: list[dict[str, Any]], method: RLMethod, quantity: str) -> list[tuple[int, float]]:
    """(step, value) of every optimizer-step entry logging `quantity` under the method's key."""
    key = method.log_key(quantity)
    return [(int(h["step"]), float(h[key])) for h in history if key and "loss" in h and key in h and "step" in h]


def plot_dynamics(histories: list[History], methods: dict[str, RLMethod], costs: dict[str, dict[str, Any]],
                  path: Path, names: dict[str, str] | None = None) -> bool:
    """A row of panels against steps and one against the stage's FLOPs; a colour per RL stage. False (and no
    file) when no stage was trained by an RL method."""
    runs = [(run, h) for run, h in histories if run in methods]
    if not runs:
        return False
    from .plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(2, len(PANELS), figsize=(4.2 * len(PANELS), 6.8), squeeze=False)
    for i, (run, history) in enumerate(runs):
        method, cost = methods[run], costs.get(run)
        for col, (_, lines) in enumerate(PANELS):
            for quantity, style, marker, label in lines:
                points = series(history, method, quantity)
                if not points:
                    continue
                steps, values = zip(*points)
                name = f"{(names or {}).get(run, run)} {label}".strip()
                axes[0][col].plot(steps, values, ls=style, color=f"C{i % 10}", marker=marker, ms=4, label=name)
                flops = [at_step(cost, s)["flops"] for s in steps] if cost else []
                if flops and None not in flops:
                    axes[1][col].plot(flops, values, ls=style, color=f"C{i % 10}", marker=marker, ms=4, label=name)
    for col, (title, _) in enumerate(PANELS):
        for row, x in enumerate(("optimizer step of the stage", "FLOPs spent in the stage")):
            ax = axes[row][col]
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(x, fontsize=8)
            if ax.lines:
                ax.legend(fontsize=5)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", transform=ax.transAxes, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_kl_at_evaluation(points: list[dict[str, Any]], path: Path) -> bool:
    """KL(model || base) per completion token, measured at evaluation on each model's own greedy completions,
    against cumulative training FLOPs from the base (each experiment a colour, its stages a tree, as the headline
    plot): what RL with beta 0 never logs. First test set only (curve.csv has them all). False when no trained
    point has it."""
    from .plots import _pyplot, branches

    known = [p for p in points if p["kl_to_base"] is not None]
    if not any(p["stage"] != "base" for p in known):
        return False
    plt = _pyplot()
    testset = next(p for p in known if p["stage"] != "base")["testset"]
    mine = [p for p in known if p["testset"] == testset]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, name in enumerate(dict.fromkeys(p["experiment"] for p in mine)):
        for k, branch in enumerate(branches([p for p in mine if p["experiment"] == name], "flops")):
            ax.plot([p["flops"] for p in branch], [p["kl_to_base"] for p in branch], color=f"C{i % 10}",
                    marker=".", label=None if k else name)
    ax.set(xlabel="training FLOPs from the base model", ylabel="KL(model || base) per completion token (nats)",
           title=f"KL to the base at evaluation ({testset}, greedy completions)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
