"""Task `jsonl`: your own GSM8K-style question/answer rows ('... #### N'), from data.train_file/test_file."""
from __future__ import annotations

from ..data import carve, normalise_gsm8k_rows
from ..errors import DataError
from ..rows import read_jsonl


def test_sets(cfg) -> list[str]:
    return ["test"]


def input_files(cfg, socratic: bool) -> list[str]:
    return [cfg.train_file, cfg.test_file]


def load(cfg, skipped: dict[str, int], socratic: bool = False) -> dict[str, list[dict]]:
    train = normalise_gsm8k_rows(read_jsonl(cfg.train_file), cfg.train_file, "train", cfg.missing_answer, skipped)
    test = normalise_gsm8k_rows(read_jsonl(cfg.test_file), cfg.test_file, "test", cfg.missing_answer, skipped)
    if not test:
        raise DataError(f"{cfg.test_file}: no usable test rows")
    splits = carve(train, cfg, where=cfg.train_file, skipped=skipped.get(cfg.train_file, 0))
    return {**splits, "test": test[: cfg.test_size]}
