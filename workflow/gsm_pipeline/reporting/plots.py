"""Figures for the report, written as PNG files beside index.html."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..stages import MARKERS
from ..training.methods import RLMethod
from .comparison import STAGE_ORDER, row_key


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


TEMPLATE_COLOURS = {True: "tab:blue", False: "tab:orange"}


def _accuracy_groups(rows: list[dict[str, Any]], testset: str, stage: str) -> list[tuple[str, list[dict]]]:
    """(label, rows) per bar group of one panel: each evaluation once (rows repeat a shared stage under every
    experiment using it), the base model by prompt, a trained stage under the first experiment using it."""
    unique: dict[tuple, dict] = {}
    for r in rows:
        if r["testset"] == testset and r["stage"] == stage:
            unique.setdefault((r["run"], r["prompt"]), r)
    if stage == "base":
        return [(prompt, [r]) for (_, prompt), r in sorted(unique.items())]
    groups: dict[str, list[dict]] = {}
    for r in sorted(unique.values(), key=lambda r: (r["method"], r["run"], not r["eval_chat_template"])):
        groups.setdefault(f"{r['experiment']}\n{r['method'].split(' ', 1)[1]}", []).append(r)
    return list(groups.items())


def plot_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    """Strict accuracy per stage (a panel each), grouped by training method, one bar per eval prompt coloured by
    whether the chat template was used at evaluation; dots: flexible accuracy; crosses: answer-format rate."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    testsets = sorted({r["testset"] for r in rows})
    stages = [s for s in STAGE_ORDER if any(r["stage"] == s for r in rows)]
    panels = {(t, s): _accuracy_groups(rows, t, s) for t in testsets for s in stages}
    bars = [max(sum(len(g) + 0.6 for _, g in panels[(t, s)]) for t in testsets) for s in stages]
    fig, axes = plt.subplots(len(testsets), len(stages), figsize=(min(4 + 0.45 * sum(bars), 40), 3.8 * len(testsets)),
                             squeeze=False, gridspec_kw={"width_ratios": bars}, sharey=True)
    for (testset, stage), ax in zip(panels, axes.flat):
        x, ticks, labels = 0.0, [], []
        for label, group in panels[(testset, stage)]:
            start = x
            for r in group:
                acc = r["accuracy_strict"]
                ax.bar(x, acc, 0.8, color=TEMPLATE_COLOURS[bool(r["eval_chat_template"])],
                       yerr=[[acc - r["ci95_low"]], [r["ci95_high"] - acc]], capsize=2, edgecolor="black", lw=0.3,
                       hatch="" if r["eval_matches_training"] or stage == "base" else "//")
                ax.plot(x, r["accuracy_flexible"], "k.", ms=5)
                ax.plot(x, r["answer_rate"], "kx", ms=4)
                x += 1
            ticks.append((start + x - 1) / 2)
            labels.append(label)
            x += 0.6
        ax.set_xticks(ticks, labels, fontsize=6, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{testset} / {stage}", fontsize=9)
    axes[0][0].set_ylabel("strict accuracy (95% CI)")
    axes[0][0].legend(handles=[Patch(color=c, label=f"eval {'with' if k else 'without'} chat template")
                               for k, c in TEMPLATE_COLOURS.items()], fontsize=6, loc="upper left")
    fig.suptitle("bars: strict accuracy; dots: flexible accuracy; crosses: answer-format rate; "
                 "hatched: asked differently than trained", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_template_scatter(rows: list[dict[str, Any]], path: Path) -> bool:
    """Strict accuracy asked with the chat template (x) against without it (y), one point per experiment,
    stage, test set and eval format evaluated both ways. False (and no file) when nothing was."""
    pairs: dict[tuple, dict[bool, dict]] = {}
    for r in rows:
        key = (r["experiment"], r["stage"], r["testset"], r["prompt_without_template"])
        pairs.setdefault(key, {})[r["eval_chat_template"]] = r
    both = [p for p in pairs.values() if len(p) == 2]
    if not both:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for p in both:
        chat, raw = p[True], p[False]
        ax.scatter(chat["accuracy_strict"], raw["accuracy_strict"], marker=MARKERS[chat["stage"]],
                   color=TEMPLATE_COLOURS[bool(chat["train_chat_template"])], alpha=0.7)
        ax.annotate(f"{chat['experiment']}/{chat['stage']}", (chat["accuracy_strict"], raw["accuracy_strict"]),
                    fontsize=5, alpha=0.7)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="strict accuracy, eval with chat template",
           ylabel="strict accuracy, eval without chat template")
    shown = ", ".join(f"{MARKERS[s]} {s}" for s in dict.fromkeys(p[True]["stage"] for p in both))
    ax.set_title(f"marker: stage ({shown}); colour: trained with (blue) / without template", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


TRAINING_PANELS = [("loss", "loss"), ("reward and its components", "reward"), ("KL to the starting model", "kl"),
                   ("mean completion length (tokens)", "completion_length")]


def panel_keys(quantity: str, method: RLMethod | None, history: list[dict[str, Any]]) -> list[str]:
    """The log keys a panel draws for one run: the loss for every stage; for an RL stage, what its method logs
    the quantity under (the reward with each reward function's mean)."""
    if quantity == "loss":
        return ["loss"]
    key = method.log_key(quantity) if method else None
    keys = [key] if key else []
    parts = method.log_key("reward_parts") if method and quantity == "reward" else None
    if parts:
        keys += sorted({k for h in history for k in h if k.startswith(parts) and k.endswith("/mean")})
    return keys


def plot_training_curves(histories: list[tuple[str, list[dict[str, Any]]]], methods: dict[str, RLMethod],
                         path: Path, names: dict[str, str] | None = None) -> None:
    """Loss, RL reward (total and per function), KL and completion length against step, a line per run, each
    read under the key its RL method logs it by."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(4.2 * len(TRAINING_PANELS), 3.6), squeeze=False)
    for ax, (title, quantity) in zip(axes[0], TRAINING_PANELS):
        for run, history in histories:
            main = panel_keys(quantity, methods.get(run), history)[:1]
            for key in panel_keys(quantity, methods.get(run), history):
                points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
                if points:
                    name = (names or {}).get(run, run)
                    label = name if key in main else f"{name} {key.split('/')[1]}"
                    ax.plot(*zip(*points), marker=".", ms=3, lw=1, label=label,
                            ls="-" if quantity in ("loss", "reward") and key in main else "--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=5)
        else:
            by = "/".join(sorted({m.label for m in methods.values()})) or "any stage"
            ax.text(0.5, 0.5, "not logged (KL is computed only with beta > 0)" if quantity == "kl"
                    else f"not logged by {by}", ha="center", transform=ax.transAxes, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sampling(rows: list[dict[str, Any]], sampling: dict[tuple[str, str], dict], path: Path) -> None:
    """maj@n, best-of-n and pass@n against n per stage, and how many distinct answers the samples gave."""
    plt = _pyplot()
    keys = sorted({(r["experiment"], r["testset"]) for r in rows if row_key(r) in sampling})
    fig, axes = plt.subplots(2, len(keys), figsize=(4.5 * len(keys), 6.4), squeeze=False)
    for col, (exp, testset) in enumerate(keys):
        sub = sorted((r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)
                      and row_key(r) in sampling), key=lambda r: STAGE_ORDER.index(r["stage"]))
        for r in sub:
            m = sampling[row_key(r)]
            ns = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@"))
            for kind, style in (("maj", "-"), ("best", "--"), ("pass", ":")):
                axes[0][col].plot(ns, [m[f"{kind}@{n}"] for n in ns], style, marker=".",
                                  label=f"{r['stage']} {r['prompt']} {kind}@n")
            axes[1][col].hist(list(m["unique_answers"].values()), bins=range(1, 11), alpha=0.5, label=r["stage"])
        axes[0][col].set_title(f"{exp} / {testset}", fontsize=9)
        axes[0][col].set_xscale("log", base=2)
        axes[0][col].set_ylim(0, 1)
        axes[0][col].set_xlabel("n samples")
        axes[1][col].set_xlabel("distinct answers per question")
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=6)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(rows: list[dict[str, Any]], bins: dict[tuple[str, str], list[dict]], path: Path) -> None:
    """Reliability diagrams: one panel per confidence experiment and stage, a line per test set; the
    diagonal is perfect calibration, marker area is the number of answers in the bin."""
    plt = _pyplot()
    panels = sorted({(r["experiment"], r["stage"]) for r in rows if r["confidence"]},
                    key=lambda k: (k[0], STAGE_ORDER.index(k[1])))
    cols = max(1, min(4, len(panels)))
    nrows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 3.3 * nrows), squeeze=False)
    for ax, (exp, stage) in zip(axes.flat, panels):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        for r in (r for r in rows if (r["experiment"], r["stage"]) == (exp, stage)):
            filled = [b for b in bins.get(row_key(r), []) if b["count"]]
            ece = "n/a" if r["ece"] is None else f"{r['ece']:.2f}"
            ax.plot([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o",
                    label=f"{r['testset']} {r['prompt']} ECE {ece} ({r['confidence_rate']:.0%} stated)")
            ax.scatter([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled],
                       s=[8 * b["count"] for b in filled], alpha=0.3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="stated confidence", title=f"{exp} / {stage}")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy (strict)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def branches(points: list[dict[str, Any]], x: str) -> list[list[dict[str, Any]]]:
    """One experiment's chain as a tree: per trained stage, its parent's final point then its own points in step
    order (full SFT and RL both branch from prep SFT; neither follows the other). Points without a value on the
    axis (an RL method that logs no completion lengths has no FLOPs) are left out."""
    known = [p for p in points if p[x] is not None]
    final = {p["stage_run"]: p for p in known if p["final"]}
    out = []
    for stage_run in dict.fromkeys(p["stage_run"] for p in known if p["stage"] != "base"):
        own = sorted((p for p in known if p["stage_run"] == stage_run), key=lambda p: p["stage_step"])
        start = final.get(own[0]["parent_run"])
        out.append(([start] if start else []) + own)
    return out


def plot_compute_curves(points: list[dict[str, Any]], by_compute: Path, by_steps: Path) -> dict[str, str] | None:
    """The headline, against cumulative training compute and again against optimizer steps (compute_figure).
    None when nothing was trained."""
    if not any(p["stage"] != "base" for p in points):
        return None
    plt = _pyplot()
    out = {}
    for path, x in ((by_compute, "flops"), (by_steps, "optimizer_steps")):
        fig = compute_figure(points, x)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out[x] = path.name
    return out


def compute_figure(points: list[dict[str, Any]], x: str):
    """Strict accuracy (95% band) and answer-format rate against `x` (flops or optimizer_steps); each experiment a
    colour, its stages a tree of branches (SFT points round, RL points triangles, intermediate checkpoints small),
    the base model as a dashed horizontal reference. First test set only; curve.csv has them all."""
    plt = _pyplot()
    testset = next(p for p in points if p["stage"] != "base")["testset"]
    mine = [p for p in points if p["testset"] == testset]
    label = {"flops": "training FLOPs from the base model (6N per token trained, 2N per token generated)",
             "optimizer_steps": "optimizer steps from the base model"}[x]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric, low, high, title in ((axes[0], "accuracy_strict", "ci95_low", "ci95_high", "strict accuracy"),
                                         (axes[1], "answer_rate", "answer_ci95_low", "answer_ci95_high",
                                          "answer-format rate")):
        for value in sorted({p[metric] for p in mine if p["stage"] == "base"}):
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
        for i, name in enumerate(dict.fromkeys(p["experiment"] for p in mine)):
            colour = f"C{i % 10}"
            for k, branch in enumerate(branches([p for p in mine if p["experiment"] == name], x)):
                xs = [p[x] for p in branch]
                ax.plot(xs, [p[metric] for p in branch], color=colour, label=None if k else name, linewidth=1.2)
                ax.fill_between(xs, [p[low] for p in branch], [p[high] for p in branch], color=colour, alpha=0.12)
                for p in branch[1:]:
                    ax.plot(p[x], p[metric], marker=MARKERS[p["stage"]], color=colour,
                            markersize=6 if p["final"] else 3.5)
        ax.set_title(f"{title} ({testset}, 95% interval)", fontsize=10)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
