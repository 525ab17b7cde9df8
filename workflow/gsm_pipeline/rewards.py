"""GRPO reward functions: small, pure, and in TRL's signature
`f(completions, answer, **kwargs) -> list[float]` (`answer` is a dataset column)."""
from __future__ import annotations

from typing import Callable

from .answers import extract_confidence, extract_strict, final_number, has_working_out, is_correct

Reward = Callable[..., list[float]]


def format_score(completion: str, answer_format: str) -> float:
    """1 for the full format (working out + parseable answer), 0.5 for the answer alone, else 0."""
    if extract_strict(completion, answer_format) is None:
        return 0.0
    return 1.0 if has_working_out(completion, answer_format) else 0.5


def correctness_score(completion: str, answer: str, answer_format: str, weight: float = 2.0) -> float:
    """`weight` when the strictly extracted answer equals the gold number, else 0."""
    return weight if is_correct(extract_strict(completion, answer_format), final_number(answer)) else 0.0


def calibration_score(completion: str, answer: str, answer_format: str) -> float:
    """RLCR's reward: correctness (1/0) minus the Brier error of the stated confidence. A missing or
    unparseable confidence counts as the worst Brier error, 1, so stating none never pays."""
    correct = 1.0 if is_correct(extract_strict(completion, answer_format), final_number(answer)) else 0.0
    confidence = extract_confidence(completion)
    return correct - (1.0 if confidence is None else (confidence - correct) ** 2)


def make_reward_functions(names: list[str], answer_format: str) -> list[Reward]:
    """TRL logs each reward under its function's __name__, so each closure gets a clear one."""
    def format_reward(completions, **kwargs):
        return [format_score(c, answer_format) for c in completions]

    def correctness_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format) for c, a in zip(completions, answer)]

    def binary_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format, weight=1.0) for c, a in zip(completions, answer)]

    def calibration_reward(completions, answer, **kwargs):
        return [calibration_score(c, a, answer_format) for c, a in zip(completions, answer)]

    table = {"format": format_reward, "correctness": correctness_reward, "binary": binary_reward,
             "calibration": calibration_reward}
    return [table[name] for name in names]
