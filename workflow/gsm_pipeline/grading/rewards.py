"""RL reward functions: small, pure, and in TRL's signature
`f(completions, answer, **kwargs) -> list[float]` (`answer` is a dataset column).
Each reads the task's grader (answers.grade for the GSM tasks), so a task plugin's checking is what
RL rewards too. `random` is the control (arXiv 2506.10947): a seeded coin per completion, blind to it.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from typing import Any, Callable

from .answers import final_number, grade

Reward = Callable[..., list[float]]
Grader = Callable[[str, float | None, str], dict]


def format_score(completion: str, answer_format: str, grader: Grader = grade) -> float:
    """1 for the full format (working out + parseable answer), 0.5 for the answer alone, else 0."""
    graded = grader(completion, None, answer_format)
    if not graded["has_answer"]:
        return 0.0
    return 1.0 if graded["has_working_out"] else 0.5


def correctness_score(completion: str, answer: str, answer_format: str, weight: float = 2.0,
                      grader: Grader = grade) -> float:
    """`weight` when the strictly extracted answer equals the gold number, else 0."""
    return weight if grader(completion, final_number(answer), answer_format)["correct_strict"] else 0.0


def calibration_score(completion: str, answer: str, answer_format: str, grader: Grader = grade) -> float:
    """RLCR's reward: correctness (1/0) minus the Brier error of the stated confidence. A missing or
    unparseable confidence counts as the worst Brier error, 1, so stating none never pays."""
    graded = grader(completion, final_number(answer), answer_format)
    correct = 1.0 if graded["correct_strict"] else 0.0
    confidence = graded["confidence"]
    return correct - (1.0 if confidence is None else (confidence - correct) ** 2)


def random_score(seed: int, rank: int, step: int, call: int, index: int) -> float:
    """A fair coin (1 or 0) for one completion slot: the seed, the process, the optimizer step, the reward call
    within that step and the position in it, hashed. So a rerun, or a run resumed from a checkpoint, draws the
    same coins, whatever the completions say."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{step}/{call}/{index}".encode(), digest_size=1).digest()
    return float(digest[0] & 1)


def make_reward_functions(names: list[str], answer_format: str, grader: Grader = grade, seed: int = 0) -> list[Reward]:
    """TRL logs each reward under its function's __name__, so each closure gets a clear one."""
    def format_reward(completions, **kwargs):
        return [format_score(c, answer_format, grader) for c in completions]

    def correctness_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format, 2.0, grader) for c, a in zip(completions, answer)]

    def binary_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format, 1.0, grader) for c, a in zip(completions, answer)]

    def calibration_reward(completions, answer, **kwargs):
        return [calibration_score(c, a, answer_format, grader) for c, a in zip(completions, answer)]

    calls = {"step": -1, "call": 0}
    rank = int(os.environ.get("RANK", "0"))

    def random_reward(completions, trainer_state=None, **kwargs):
        step = trainer_state.global_step if trainer_state is not None else 0
        if step != calls["step"]:
            calls.update(step=step, call=0)
        call = calls["call"]
        calls["call"] += 1
        return [random_score(seed, rank, step, call, i) for i in range(len(completions))]

    table = {"format": format_reward, "correctness": correctness_reward, "binary": binary_reward,
             "calibration": calibration_reward, "random": random_reward}
    return [table[name] for name in names]


ZERO_STD_KEYS = ("groups/zero_std_all_correct", "groups/zero_std_all_wrong")


def group_split(totals: list[float], correct: list[bool], prompts: list[Any], size: int) -> dict[str, float] | None:
    """Of one reward call's groups (each prompt's `size` completions in a row, as TRL's sampler lays them out),
    the share whose total reward has no variance (TRL's frac_reward_zero_std, whose groups teach nothing) with
    every completion right, and with every one wrong (arXiv 2504.11343). None when the call is not whole groups."""
    if not totals or len(totals) % size or len(prompts) != len(totals):
        return None
    groups = range(0, len(totals), size)
    if any(prompts[g:g + size].count(prompts[g]) != size for g in groups):
        return None
    flat = [g for g in groups if all(math.isclose(t, totals[g], abs_tol=1e-6) for t in totals[g:g + size])]
    right = sum(all(correct[g:g + size]) for g in flat)
    wrong = sum(not any(correct[g:g + size]) for g in flat)
    return dict(zip(ZERO_STD_KEYS, (right / len(groups), wrong / len(groups))))


def logging_group_split(functions: list[Reward], answer_format: str, size: int, weights: list[float] | None = None,
                        grader: Grader = grade) -> list[Reward]:
    """The same reward functions; after the last of them, each call also logs `group_split` of the weighted total
    reward through TRL's `log_metric` (averaged per logging step, beside frac_reward_zero_std). Correctness is
    the task's strict grading, whichever rewards the stage trains on (the split means the same under `random`)."""
    weights = weights or [1.0] * len(functions)
    outputs: dict[int, list[float]] = {}

    def wrap(i: int, function: Reward) -> Reward:
        @functools.wraps(function)
        def reward(completions, **kwargs):
            outputs[i] = function(completions, **kwargs)
            log = kwargs.get("log_metric")
            if i == len(functions) - 1 and log is not None:
                totals = [sum(w * outputs[j][k] for j, w in enumerate(weights)) for k in range(len(completions))]
                correct = [grader(c, final_number(a), answer_format)["correct_strict"]
                           for c, a in zip(completions, kwargs["answer"])]
                for key, value in (group_split(totals, correct, kwargs.get("prompts") or [], size) or {}).items():
                    log(key, value)
            return outputs[i]
        return reward

    return [wrap(i, f) for i, f in enumerate(functions)]
