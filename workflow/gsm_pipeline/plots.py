"""Figures for the report, written as PNG files beside index.html."""
from __future__ import annotations

from pathlib import Path
from typing import Any

STAGE_ORDER = ["base", "prep_sft", "full_sft", "grpo"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(rows: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    keys = sorted({(r["experiment"], r["testset"]) for r in rows})
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, (exp, testset) in zip(axes[0], keys):
        sub = sorted((r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)),
                     key=lambda r: STAGE_ORDER.index(r["stage"]))
        xs = range(len(sub))
        for offset, kind, colour in ((-0.2, "strict", "tab:blue"), (0.2, "flexible", "tab:orange")):
            acc = [r[f"accuracy_{kind}"] for r in sub]
            lo = [r[f"{'ci95' if kind == 'strict' else 'flex_ci95'}_low"] for r in sub]
            hi = [r[f"{'ci95' if kind == 'strict' else 'flex_ci95'}_high"] for r in sub]
            ax.bar([x + offset for x in xs], acc, 0.4, color=colour, label=kind,
                   yerr=[[a - low for a, low in zip(acc, lo)], [h - a for a, h in zip(acc, hi)]], capsize=3)
        ax.plot(list(xs), [r["answer_rate"] for r in sub], "k.--", label="answer-format rate")
        ax.set_xticks(list(xs), [r["stage"] for r in sub])
        ax.set_ylim(0, 1)
        ax.set_title(f"{exp} / {testset} (n={sub[0]['n']})", fontsize=9)
    axes[0][0].set_ylabel("accuracy (bars, 95% Wilson CI) / format rate")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sampling(rows: list[dict[str, Any]], sampling: dict[tuple[str, str], dict], path: Path) -> None:
    """maj@n, best-of-n and pass@n against n per stage, and how many distinct answers the samples gave."""
    plt = _pyplot()
    keys = sorted({(r["experiment"], r["testset"]) for r in rows if (r["run"], r["testset"]) in sampling})
    fig, axes = plt.subplots(2, len(keys), figsize=(4.5 * len(keys), 6.4), squeeze=False)
    for col, (exp, testset) in enumerate(keys):
        sub = sorted((r for r in rows if (r["experiment"], r["testset"]) == (exp, testset)
                      and (r["run"], testset) in sampling), key=lambda r: STAGE_ORDER.index(r["stage"]))
        for r in sub:
            m = sampling[(r["run"], testset)]
            ns = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@"))
            for kind, style in (("maj", "-"), ("best", "--"), ("pass", ":")):
                axes[0][col].plot(ns, [m[f"{kind}@{n}"] for n in ns], style, marker=".",
                                  label=f"{r['stage']} {kind}@n")
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
            filled = [b for b in bins.get((r["run"], r["testset"]), []) if b["count"]]
            ece = "n/a" if r["ece"] is None else f"{r['ece']:.2f}"
            ax.plot([b["mean_confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o",
                    label=f"{r['testset']} ECE {ece} ({r['confidence_rate']:.0%} stated)")
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
