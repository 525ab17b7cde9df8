"""Task `reasoning_gym`: any reasoning-gym dataset whose answers are numbers, generated offline, as
`data.reasoning_gym` names it (dataset and generator settings). The training splits and the `rg_id` test set come
from one generator; `rg_harder` from the same dataset at a difficulty never trained on (`harder`), so
in-distribution against harder is a test-set axis, as gsm_symbolic's held-out templates are. The answer is the
whole completion asked for: there is no worked solution to teach, so SFT targets hold the answer alone."""
from __future__ import annotations

from typing import Any

from ..data import carve
from ..errors import DataError
from ..grading.numerals import exact_number, format_number

# The answer formats ask for working out; these problems have none to show.
INSTRUCTIONS = {"gsm8k": "Give only the final number after '#### '.",
                "tagged": "Give only the final number between <SOLUTION> and </SOLUTION>.",
                "boxed": "Give only the final number in \\boxed{}."}
EXEMPLARS = [{"question": "State the final answer to the following arithmetic problem: 12 + 30 =", "reasoning": "",
              "answer": "42"},
             {"question": "State the final answer to the following arithmetic problem: 7 + 58 =", "reasoning": "",
              "answer": "65"}]


def test_sets(cfg) -> list[str]:
    return ["rg_id", "rg_harder"] if cfg.reasoning_gym.harder else ["rg_id"]


def generate(name: str, settings: dict[str, Any], seed: int, need: int, where: str,
             taken: set[str] | None = None, key: str = "data.reasoning_gym") -> list[dict[str, Any]]:
    """`need` distinct problems (none of `taken`), rows with exact numeric answers; a generator whose space is too
    small, or whose answers are not numbers, is named."""
    import reasoning_gym

    rows, seen = [], set(taken or ())
    size = need * 3 + 50
    for example in reasoning_gym.create_dataset(name, **settings, seed=seed, size=size):
        if example["question"] in seen:
            continue
        seen.add(example["question"])
        value = exact_number(str(example["answer"]))
        if value is None:
            raise DataError(f"{key}: {name}'s answers are not numbers (e.g. {example['answer']!r}); "
                            "this task grades numbers")
        index = len(rows)
        rows.append({"id": f"{where}-{index}", "question": example["question"], "reasoning": "",
                     "answer": format_number(value), "solution": str(example["answer"]), "template": None,
                     "source": name})
        if len(rows) == need:
            return rows
    raise DataError(f"{key}: {name} with {settings} gave {len(rows)} distinct problems of the {need} "
                    "the data sizes need (a wider setting, or smaller data.*_size)")


def load(cfg, skipped: dict[str, int], socratic: bool = False) -> dict[str, list[dict[str, Any]]]:
    rg = cfg.reasoning_gym
    need = cfg.prep_sft_size + cfg.full_sft_size + cfg.rl_size + cfg.test_size
    pool = generate(rg.dataset, rg.config, cfg.seed, need, "rg")
    splits = carve(pool, cfg, test_from_pool=True, where=f"reasoning-gym {rg.dataset}")
    splits["rg_id"] = splits.pop("test")
    if rg.harder:
        splits["rg_harder"] = generate(rg.dataset, rg.harder, cfg.seed + 1, cfg.test_size, "rg_harder",
                                       taken={r["question"] for r in pool})
    return splits
