"""Dataset preparation: every source becomes normalised rows, written once as JSONL.

A row is {id, question, reasoning, answer, template, source}: `answer` is the final
number as a string, `reasoning` the worked solution without it, `template` the
gsm_symbolic template id (None for GSM8K), which is what the held-out split uses.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator

from .answers import normalize_number, split_gsm8k_answer
from .config import DataConfig
from .errors import DataError, run_main

SFT_SPLITS = ("prep_sft", "full_sft", "grpo")


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def read_jsonl(path: str | Path, problems: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs. A bad line raises, or, given a `problems` list, is recorded there and skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: dataset file not found")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                problem = None if isinstance(row, dict) else f"{path}:{lineno}: expected a JSON object"
            except json.JSONDecodeError as exc:
                problem = f"{path}:{lineno}: not valid JSON ({exc.msg})"
            if problem is None:
                yield lineno, row
            elif problems is None:
                raise DataError(problem)
            else:
                problems.append(problem)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write atomically: a crash never leaves a half-written dataset behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path)]


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
        for field in ("question", "answer"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise DataError(f"{where}:{key}: row has no '{field}'")
        reasoning, final = split_gsm8k_answer(row["answer"]) if "####" in row["answer"] else ("", row["answer"])
        value = normalize_number(final)
        if value is None:
            if missing_answer == "error":
                raise DataError(f"{where}:{key}: answer has no final number")
            skipped[where] = skipped.get(where, 0) + 1
            continue
        out.append({"id": f"{prefix}-{key}", "question": row["question"].strip(), "reasoning": reasoning,
                    "answer": format_number(value), "template": None, "source": prefix})
    return out


def gsm_symbolic_rows(cfg: DataConfig) -> dict[str, list[dict[str, Any]]]:
    """Train splits from in-distribution templates, test sets from both kinds."""
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import (
        GSMSymbolicDataset,
        GSMSymbolicDatasetConfig,
        tasks_ok,
    )

    templates = sorted(tasks_ok)
    n_heldout = max(1, round(len(templates) * cfg.heldout_template_fraction))
    heldout = set(random.Random(cfg.seed).sample(templates, n_heldout))
    need_id = cfg.prep_sft_size + cfg.full_sft_size + cfg.grpo_size + cfg.test_size
    # Template draws are uniform, so this pool holds enough of both kinds with a wide margin.
    pool = int(max(need_id / (1 - cfg.heldout_template_fraction),
                   cfg.test_size / cfg.heldout_template_fraction) * 1.5) + 50
    dataset = GSMSymbolicDataset(GSMSymbolicDatasetConfig(seed=cfg.seed, size=pool))
    in_dist, held, seen = [], [], set()
    for idx in range(pool):
        template = dataset.task_indices[idx]
        full = len(held) >= cfg.test_size if template in heldout else len(in_dist) >= need_id
        if full:
            continue
        example = dataset[idx]
        if example["question"] in seen:
            continue
        seen.add(example["question"])
        reasoning, final = split_gsm8k_answer(example["metadata"]["answer_cot"])
        row = {"id": f"gsm_symbolic-{idx}", "question": example["question"], "reasoning": reasoning,
               "answer": format_number(float(example["answer"])), "template": template, "source": "gsm_symbolic"}
        (held if template in heldout else in_dist).append(row)
    if len(in_dist) < need_id or len(held) < cfg.test_size:
        raise DataError("gsm_symbolic: generator produced too few distinct problems for the requested sizes")
    splits = carve(in_dist, cfg, test_from_pool=True)
    splits["symbolic_id"] = splits.pop("test")
    splits["symbolic_heldout"] = held[: cfg.test_size]
    return splits


def carve(train: list[dict], cfg: DataConfig, test_from_pool: bool = False) -> dict[str, list[dict]]:
    """Disjoint prep_sft / full_sft / grpo (and optionally test) slices of a shuffled pool."""
    rows = list(train)
    random.Random(cfg.seed).shuffle(rows)
    sizes = [("prep_sft", cfg.prep_sft_size), ("full_sft", cfg.full_sft_size), ("grpo", cfg.grpo_size)]
    if test_from_pool:
        sizes.append(("test", cfg.test_size))
    if sum(size for _, size in sizes) > len(rows):
        asked = " + ".join(f"data.{name}_size={size}" for name, size in sizes)
        raise DataError(f"{asked} exceeds the {len(rows)} usable training rows")
    out, start = {}, 0
    for name, size in sizes:
        out[name] = rows[start:start + size]
        start += size
    return out


def gsm8k_rows(cfg: DataConfig, skipped: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    suffix = "" if cfg.gsm8k_config == "main" else "_socratic"
    if cfg.gsm8k_path:
        parts = {s: read_jsonl(Path(cfg.gsm8k_path) / f"{s}{suffix}.jsonl") for s in ("train", "test")}
        where = {s: str(Path(cfg.gsm8k_path) / f"{s}{suffix}.jsonl") for s in parts}
    else:
        import datasets
        try:
            hub = datasets.load_dataset(cfg.gsm8k_hub_id, cfg.gsm8k_config)
        except Exception as exc:  # offline, unknown id, ...: say what to do instead
            raise DataError(f"{cfg.gsm8k_hub_id}: cannot load from the hub ({type(exc).__name__}); "
                            "set data.gsm8k_path to a local folder with train.jsonl and test.jsonl") from None
        parts = {s: enumerate(hub[s]) for s in ("train", "test")}
        where = {s: f"{cfg.gsm8k_hub_id}/{s}" for s in parts}
    train = normalise_gsm8k_rows(parts["train"], where["train"], "gsm8k-train", cfg.missing_answer, skipped)
    test = normalise_gsm8k_rows(parts["test"], where["test"], "gsm8k-test", cfg.missing_answer, skipped)
    return {**carve(train, cfg), "gsm8k": test[: cfg.test_size]}


def jsonl_rows(cfg: DataConfig, skipped: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    train = normalise_gsm8k_rows(read_jsonl(cfg.train_file), cfg.train_file, "train", cfg.missing_answer, skipped)
    test = normalise_gsm8k_rows(read_jsonl(cfg.test_file), cfg.test_file, "test", cfg.missing_answer, skipped)
    if not test:
        raise DataError(f"{cfg.test_file}: no usable test rows")
    return {**carve(train, cfg), "test": test[: cfg.test_size]}


def build_splits(cfg: DataConfig) -> tuple[dict[str, list[dict]], dict[str, int]]:
    skipped: dict[str, int] = {}
    if cfg.source == "gsm_symbolic":
        splits = gsm_symbolic_rows(cfg)
    elif cfg.source == "gsm8k":
        splits = gsm8k_rows(cfg, skipped)
    else:
        splits = jsonl_rows(cfg, skipped)
    for name, path in cfg.extra_test_files.items():
        rows = normalise_gsm8k_rows(read_jsonl(path), path, name, cfg.missing_answer, skipped)
        if not rows:
            raise DataError(f"{path}: no usable test rows")
        splits[name] = rows[: cfg.test_size]
    return splits, skipped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Prepare the SFT, GRPO and test sets as JSONL.")
    parser.add_argument("--config", required=True, help="data section as JSON")
    parser.add_argument("--out", required=True, help="output folder (results/data)")
    args = parser.parse_args(argv)
    cfg = DataConfig.model_validate_json(args.config)
    splits, skipped = build_splits(cfg)
    out = Path(args.out)
    for name in SFT_SPLITS:
        write_jsonl(out / f"{name}.jsonl", splits[name])
    for name in cfg.test_sets():
        write_jsonl(out / "test" / f"{name}.jsonl", splits[name])
    manifest = {"counts": {k: len(v) for k, v in splits.items()}, "skipped_no_final_number": skipped,
                "config": cfg.model_dump()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest["counts"]))


if __name__ == "__main__":
    run_main(main)
