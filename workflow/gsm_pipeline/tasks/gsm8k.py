"""Task `gsm8k`: openai/gsm8k from the hub, or a local folder (data.gsm8k_path) of the same JSONL files.

With `socratic`, each training row also carries GSM8K's socratic reasoning (sub-question/answer steps),
matched by question, so experiments with train_data: socratic train on the same problems.
"""
from __future__ import annotations

from pathlib import Path

from ..data import carve, normalise_gsm8k_rows
from ..errors import DataError
from ..grading.numerals import split_gsm8k_answer
from ..rows import read_jsonl

SOCRATIC = True


def test_sets(cfg) -> list[str]:
    return ["gsm8k"]


def input_files(cfg, socratic: bool) -> list[str]:
    if not cfg.gsm8k_path:
        return []
    names = ["train", "test"] + (["train_socratic"] if socratic else [])
    return [str(Path(cfg.gsm8k_path) / f"{name}.jsonl") for name in names]


def _parts(cfg, config: str, splits: tuple[str, ...]):
    """(rows, where) per split, from the local folder or the hub."""
    suffix = "" if config == "main" else "_socratic"
    if cfg.gsm8k_path:
        return {s: (read_jsonl(Path(cfg.gsm8k_path) / f"{s}{suffix}.jsonl"),
                    str(Path(cfg.gsm8k_path) / f"{s}{suffix}.jsonl")) for s in splits}
    import datasets
    try:
        hub = datasets.load_dataset(cfg.gsm8k_hub_id, config)
    except Exception as exc:  # offline, unknown id, ...: say what to do instead
        raise DataError(f"{cfg.gsm8k_hub_id}: cannot load from the hub ({type(exc).__name__}); "
                        "set data.gsm8k_path to a local folder with train.jsonl and test.jsonl") from None
    return {s: (enumerate(hub[s]), f"{cfg.gsm8k_hub_id}/{config}/{s}") for s in splits}


def load(cfg, skipped: dict[str, int], socratic: bool = False) -> dict[str, list[dict]]:
    parts = _parts(cfg, "main", ("train", "test"))
    train = normalise_gsm8k_rows(*parts["train"], "gsm8k-train", cfg.missing_answer, skipped)
    test = normalise_gsm8k_rows(*parts["test"], "gsm8k-test", cfg.missing_answer, skipped)
    if socratic:
        rows, where = _parts(cfg, "socratic", ("train",))["train"]
        by_question = {row["question"].strip(): split_gsm8k_answer(row["answer"])[0] for _, row in rows
                       if isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)}
        for row in train:
            if row["question"] not in by_question:
                raise DataError(f"{where}: no socratic answer for training question {row['id']!r}")
            row["reasoning_socratic"] = by_question[row["question"]]
    where = parts["train"][1]
    return {**carve(train, cfg, where=where, skipped=skipped.get(where, 0)), "gsm8k": test[: cfg.test_size]}
