"""Dataset preparation: every source becomes normalised rows, written once as JSONL.

A row is {id, question, reasoning, answer, solution, template, source}: `answer` is the final
number as a string, `reasoning` the worked solution without it, `solution` the source's own answer text as it
came (what lm-eval's GSM8K task shows and grades against), `template` the gsm_symbolic template id (None for
GSM8K), which is what the held-out split uses. Besides the training and test splits, `fewshot` is the task's
whole train split in source order: the pool lm-eval's protocol draws its worked examples from.
"""
from __future__ import annotations

import random
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .errors import DataError
from .grading.numerals import MAX_NUMBER_CHARS, exact, exact_number, format_number, split_gsm8k_answer
from .rows import read_jsonl
from .settings.data import TRAINING_SPLITS, DataConfig

_NUMERAL = re.compile(r"[-+]?\$?\d*\.?\d+(?:[eE][-+]?\d+)?")


def load_test_rows(path: str | Path) -> list[dict[str, Any]]:
    """Prepared rows as they are; raw GSM8K-style question/answer rows are normalised first."""
    rows = list(read_jsonl(path))
    if all("id" in row and "answer" in row for _, row in rows):
        return [row for _, row in rows]
    return normalise_gsm8k_rows(rows, str(path), Path(path).stem, "error", {})


def normalise_gsm8k_rows(rows: Iterable[tuple[Any, dict]], where: str, prefix: str,
                         missing_answer: str, skipped: dict[str, int]) -> list[dict[str, Any]]:
    """GSM8K-style {question, answer: '... #### N'} rows -> normalised rows."""
    out = []
    for key, row in rows:
        answer = row.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):  # a JSON number: the final answer
            row = {**row, "answer": format_number(answer) if exact(answer) is not None else str(answer)}
        for field in ("question", "answer"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise DataError(f"{where}:{key}: row has no '{field}'" + (
                    f" text (got {row[field]!r})" if row.get(field) is not None else ""))
        reasoning, final = split_gsm8k_answer(row["answer"]) if "####" in row["answer"] else ("", row["answer"])
        value = exact_number(final)
        if value is None and _NUMERAL.fullmatch(final.strip().replace(",", "")):
            # a number no float holds: skipping it would shrink the set without a word, so stop here
            shown = final.strip() if len(final.strip()) <= 24 else final.strip()[:24] + "..."
            raise DataError(f"{where}:{key}: answer {shown} is beyond the range the grader "
                            f"compares (at most {MAX_NUMBER_CHARS} characters, finite as a float); fix or "
                            "remove the row")
        if value is None:
            if missing_answer == "error":
                shown = final.strip() if len(final.strip()) <= 24 else final.strip()[:24] + "..."
                raise DataError(f"{where}:{key}: answer {shown!r} has no final number")
            skipped[where] = skipped.get(where, 0) + 1
            print(f"warning: {where}:{key}: row skipped, its answer has no final number "
                  "(data.missing_answer: skip)", file=sys.stderr)
            continue
        out.append({"id": f"{prefix}-{key}", "question": row["question"].strip(), "reasoning": reasoning,
                    "answer": format_number(value), "solution": row["answer"], "template": None,
                    "source": prefix})
    return out


def carve(train: list[dict], cfg: DataConfig, test_from_pool: bool = False, where: str = "training data",
          skipped: int = 0) -> dict[str, list[dict]]:
    """Disjoint prep_sft / full_sft / rl (and optionally test) slices of a shuffled pool (read from `where`,
    which lost `skipped` rows without a final number), and `fewshot`: the pool less any test rows, unshuffled."""
    rows = list(train)
    random.Random(cfg.seed).shuffle(rows)
    sizes = [(name, getattr(cfg, f"{name}_size")) for name in TRAINING_SPLITS]
    if test_from_pool:
        sizes.append(("test", cfg.test_size))
    if sum(size for _, size in sizes) > len(rows):
        asked = " + ".join(f"data.{name}_size={size}" for name, size in sizes)
        why = f", {skipped} more skipped without a final number" if skipped else ""
        empty = "; it holds no rows" if not rows and not skipped else ""
        raise DataError(f"{where}: {asked} exceeds its {len(rows)} usable training rows{why}{empty}")
    out, start = {}, 0
    for name, size in sizes:
        out[name] = rows[start:start + size]
        start += size
    tested = {row["id"] for row in out.get("test", [])}
    out["fewshot"] = [row for row in train if row["id"] not in tested]
    return out


def build_splits(cfg: DataConfig, socratic: bool = False) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """The task's splits (see tasks/), plus any extra test files; `socratic` asks the task for socratic
    reasoning beside the main one (experiments with train_data: socratic)."""
    from .tasks import get_task

    skipped: dict[str, int] = {}
    splits = get_task(cfg.source).load(cfg, skipped, socratic=socratic)
    for name, path in cfg.extra_test_files.items():
        rows = normalise_gsm8k_rows(read_jsonl(path), path, name, cfg.missing_answer, skipped)
        if not rows:
            raise DataError(f"{path}: no usable test rows")
        splits[name] = rows[: cfg.test_size]
    if cfg.battery:
        from .tasks.reasoning_gym import generate

        for offset, (name, task) in enumerate(cfg.battery.items(), start=2):  # rg_harder draws with seed + 1
            splits[name] = generate(task.dataset, task.config, cfg.seed + offset, cfg.test_size, name,
                                    key=f"data.battery.{name}")
    return splits, skipped


@lru_cache(maxsize=2)
def _splits_of(data_json: str) -> dict[str, list[dict[str, Any]]]:
    return build_splits(DataConfig.model_validate_json(data_json))[0]


def _default_splits(data: DataConfig) -> dict[str, list[dict[str, Any]]]:
    return _splits_of(data.model_dump_json())


def default_test_rows(data: DataConfig | None = None) -> list[dict[str, Any]]:
    """Without --data: the first test set of the task `data` configures (by default the settings' own: the
    in-distribution gsm_symbolic test set)."""
    data = data or DataConfig()
    return _default_splits(data)[data.test_sets()[0]]


def default_fewshot_rows(data: DataConfig | None = None) -> list[dict[str, Any]]:
    """Without --data: that task's train split, which a protocol draws worked examples from."""
    return _default_splits(data or DataConfig())["fewshot"]

