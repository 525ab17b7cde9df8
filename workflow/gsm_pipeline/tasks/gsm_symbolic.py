"""Task `gsm_symbolic`: GSM8K-template problems generated offline by reasoning-gym, with chain-of-thought
and `#### N` answers. Some templates are held out of training and tested apart."""
from __future__ import annotations

import random
from typing import Any

from ..data import carve, format_number
from ..errors import DataError
from ..grading.numerals import split_gsm8k_answer


def test_sets(cfg) -> list[str]:
    return ["symbolic_id", "symbolic_heldout"]


def load(cfg, skipped: dict[str, int], socratic: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Train splits from in-distribution templates, test sets from both kinds."""
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import (
        GSMSymbolicDataset,
        GSMSymbolicDatasetConfig,
        tasks_ok,
    )

    templates = sorted(tasks_ok)
    n_heldout = max(1, round(len(templates) * cfg.heldout_template_fraction))
    heldout = set(random.Random(cfg.seed).sample(templates, n_heldout))
    need_id = cfg.prep_sft_size + cfg.full_sft_size + cfg.rl_size + cfg.test_size
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
               "answer": format_number(example["answer"]), "solution": example["metadata"]["answer_cot"],
               "template": template, "source": "gsm_symbolic"}
        (held if template in heldout else in_dist).append(row)
    if len(in_dist) < need_id or len(held) < cfg.test_size:
        raise DataError("gsm_symbolic: generator produced too few distinct problems for the requested sizes")
    splits = carve(in_dist, cfg, test_from_pool=True, where="gsm_symbolic in-distribution templates")
    splits["symbolic_id"] = splits.pop("test")
    splits["symbolic_heldout"] = held[: cfg.test_size]
    return splits
