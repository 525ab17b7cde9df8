"""GRPO reward functions: small, pure, and in TRL's signature
`f(completions, answer, **kwargs) -> list[float]` (`answer` is a dataset column).
Each reads the task's grader (answers.grade for the GSM tasks), so a task plugin's checking is what
RL rewards too."""
from __future__ import annotations

from typing import Callable

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


def make_reward_functions(names: list[str], answer_format: str, grader: Grader = grade) -> list[Reward]:
    """TRL logs each reward under its function's __name__, so each closure gets a clear one."""
    def format_reward(completions, **kwargs):
        return [format_score(c, answer_format, grader) for c in completions]

    def correctness_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format, 2.0, grader) for c, a in zip(completions, answer)]

    def binary_reward(completions, answer, **kwargs):
        return [correctness_score(c, a, answer_format, 1.0, grader) for c, a in zip(completions, answer)]

    def calibration_reward(completions, answer, **kwargs):
        return [calibration_score(c, a, answer_format, grader) for c, a in zip(completions, answer)]

    table = {"format": format_reward, "correctness": correctness_reward, "binary": binary_reward,
             "calibration": calibration_reward}
    return [table[name] for name in names]
