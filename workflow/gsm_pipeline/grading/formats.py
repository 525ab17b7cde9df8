"""Answer formats: how each is asked for, taught, stopped and read. Adding a format is one FORMATS entry;
config choices, prompts, SFT targets, stop strings, strict grading and the working-out check all read it.

Readers are named by function name in `readers.py` (or given as a callable): prompts and SFT import this
registry, and naming keeps them from importing the answer parsers.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Reader = Callable[[str], "float | bool | None"]


@dataclass(frozen=True)
class AnswerFormat:
    instruction: str          # the system/format instruction a prompt asks with (a task may override it)
    target: str               # the completion SFT teaches, from {reasoning} and {answer}
    strict: str | Reader      # the asked-for answer, or None when the format was not followed
    working_out: str | Reader  # whether non-empty reasoning comes before the answer
    stop: tuple[str, ...] = ()              # generation may end as soon as one is written
    confidence_separator: str = "\n"        # between the answer and a stated <confidence>


FORMATS: dict[str, AnswerFormat] = {
    "tagged": AnswerFormat(
        instruction="Solve the math problem. Write your step-by-step working out between <start_working_out> and "
                    "<end_working_out>, then give only the final number between <SOLUTION> and </SOLUTION>.",
        target="<start_working_out>{reasoning}<end_working_out><SOLUTION>{answer}</SOLUTION>",
        strict="tagged_answer", working_out="tagged_working_out", stop=("</SOLUTION>",), confidence_separator=""),
    "gsm8k": AnswerFormat(
        instruction="Solve the math problem step by step. End with a line '#### N' where N is the final number.",
        target="{reasoning}\n#### {answer}", strict="gsm8k_answer", working_out="gsm8k_working_out"),
    "boxed": AnswerFormat(
        instruction="Solve the math problem step by step. Put the final number in \\boxed{}.",
        target="{reasoning}\nThe final answer is \\boxed{{{answer}}}.", strict="boxed_answer",
        working_out="boxed_working_out"),
}
