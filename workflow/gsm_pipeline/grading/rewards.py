"""RL reward functions: small, pure, and in TRL's signature
`f(completions, answer, **kwargs) -> list[float]` (`answer` is a dataset column).
Each reads the task's grader (answers.grade for the GSM tasks), so a task plugin's checking is what
RL rewards too. `random` is the control (arXiv 2506.10947): a seeded coin per completion, blind to it.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections import Counter
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


def random_score(seed: int, rank: int, step: int, prompt: str, occurrence: int) -> float:
    """A fair coin (1 or 0) for one completion: the seed, the process, the optimizer step, the prompt and which of
    that prompt's completions in this step it is, hashed. All of it is what TRL restores on resume (the step) or
    what the completion slot is, so a rerun, or a run resumed from a checkpoint, draws the same coins, whatever
    the completions say, and whatever other reward calls (an evaluation loop) came between."""
    digest = hashlib.blake2b(f"{seed}/{rank}/{step}/{prompt}/{occurrence}".encode(), digest_size=1).digest()
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

    seen: dict[str, Any] = {"step": -1, "count": Counter()}  # completions per prompt so far in this step
    rank = int(os.environ.get("RANK", "0"))

    def random_reward(completions, prompts=None, trainer_state=None, **kwargs):
        step = trainer_state.global_step if trainer_state is not None else 0
        if step != seen["step"]:
            seen.update(step=step, count=Counter())
        out = []
        for prompt in prompts or [""] * len(completions):
            key = hashlib.blake2b(str(prompt).encode(), digest_size=8).hexdigest()
            out.append(random_score(seed, rank, step, key, seen["count"][key]))
            seen["count"][key] += 1
        return out

    table = {"format": format_reward, "correctness": correctness_reward, "binary": binary_reward,
             "calibration": calibration_reward, "random": random_reward}
    return [table[name] for name in names]


CORRECT_KEY = "completions/correct_strict"
ZERO_STD_KEYS = ("groups/zero_std", "groups/zero_std_all_correct", "groups/zero_std_all_wrong")
FLAT = 1e-6  # a group is flat when its totals lie within this: float noise of a weighted sum (6e-8 seen), far
# below any reward step (0.5); TRL's frac_reward_zero_std counts only std <= 1e-8, and calls such groups signal


def group_split(totals: list[float], correct: list[bool], prompts: list[Any], size: int) -> dict[str, float] | None:
    """Of one reward call's groups (each prompt's `size` completions in a row, as TRL's sampler lays them out), the
    share whose total reward is flat (its advantages are zero up to noise, so it teaches nothing), and of those
    the share with every completion right and with every one wrong (arXiv 2504.11343): one definition, so the
    split never exceeds the total. None when the call is not whole groups."""
    if not totals or len(totals) % size or len(prompts) != len(totals):
        return None
    groups = range(0, len(totals), size)
    if any(prompts[g:g + size].count(prompts[g]) != size for g in groups):
        return None
    flat = [g for g in groups if max(totals[g:g + size]) - min(totals[g:g + size]) <= FLAT]
    right = sum(all(correct[g:g + size]) for g in flat)
    wrong = sum(not any(correct[g:g + size]) for g in flat)
    return dict(zip(ZERO_STD_KEYS, (len(flat) / len(groups), right / len(groups), wrong / len(groups))))


def gather_processes(values: list[Any]) -> list[Any]:
    """This process's list followed by every other's in rank order (TRL lays a generation batch out across the
    processes in that order, so a group split between two processes is whole again); the list itself alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return values
    from accelerate.utils import gather_object

    return gather_object(values)


def logging_group_split(functions: list[Reward], answer_format: str, size: int, weights: list[float] | None = None,
                        grader: Grader = grade, gather: Callable[[list], list] = gather_processes) -> list[Reward]:
    """The same reward functions; after the last of them, each call also logs `group_split` of the weighted total
    reward and the share of strictly correct completions through TRL's `log_metric` (averaged per logging step),
    over the whole generation batch gathered from every process (every process calls its rewards alike).
    Correctness is the task's strict grading, whichever rewards the stage trains on (the split means the same under
    `random`)."""
    weights = weights or [1.0] * len(functions)
    outputs: dict[int, list[float]] = {}

    def wrap(i: int, function: Reward) -> Reward:
        @functools.wraps(function)
        def reward(completions, **kwargs):
            outputs[i] = function(completions, **kwargs)
            log = kwargs.get("log_metric")
            if i == len(functions) - 1 and log is not None and kwargs.get("prompts"):
                rows = [(sum(w * outputs[j][k] for j, w in enumerate(weights)),
                         grader(c, final_number(a), answer_format)["correct_strict"], p)
                        for k, (c, a, p) in enumerate(zip(completions, kwargs["answer"], kwargs["prompts"]))]
                every = gather(rows)
                split = group_split([r[0] for r in every], [r[1] for r in every], [r[2] for r in every], size)
                for key, value in (split or {}).items():
                    log(key, value)
                # how often the policy's samples are right, whatever the reward says (the random row's, a negated
                # reward's): the training-time twin of the evaluation's strict accuracy
                log(CORRECT_KEY, sum(r[1] for r in every) / len(every))
            return outputs[i]
        return reward

    return [wrap(i, f) for i, f in enumerate(functions)]
