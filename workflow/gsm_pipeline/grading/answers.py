"""Answer extraction and comparison. Nothing here raises on any input string, and everything is linear in the
completion's length (a GRPO policy can emit 200,000 characters of spaces or repeated tags).

strict: the format the prompt asked for, read by that format's entry in `formats.FORMATS`: `#### N`
(lm-evaluation-harness's strict regex), the last closed `<SOLUTION>N</SOLUTION>` (markdown emphasis around N
allowed), the last balanced `\\boxed{...}` (parsed by HF math-verify, so `\\boxed{1{,}000}` counts).
flexible: the last number in the text (lm-evaluation-harness's regex), ignoring any
`<confidence>` value so a stated confidence is never mistaken for the answer.
"""
from __future__ import annotations

import math
import re

from ..tasks import DEFAULT_TASK, get_task
from . import readers
from .formats import FORMATS, Reader
from .numerals import final_number, normalize_number, split_gsm8k_answer  # noqa: F401

FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval's flexible-extract


def reader(named: str | Reader) -> Reader:
    """A format's reader: a function of readers.py by name, or the callable itself."""
    return getattr(readers, named) if isinstance(named, str) else named


def extract_strict(completion: str, answer_format: str) -> float | None:
    return reader(FORMATS[answer_format].strict)(completion or "")


def without_confidence(text: str) -> str:
    """The text with every <confidence> tag removed, closed or cut off by the token budget (linear)."""
    parts, pos = [], 0
    while (start := text.find("<confidence>", pos)) >= 0:
        parts.append(text[pos:start])
        end = text.find("</confidence>", start)
        if end < 0:
            return " ".join(parts)
        pos = end + len("</confidence>")
    parts.append(text[pos:])
    return " ".join(parts)


def extract_flexible(completion: str) -> float | None:
    text = without_confidence(completion or "")
    for groups in reversed(FLEXIBLE_PATTERN.findall(text)):
        value = normalize_number(groups[0] or groups[1])
        if value is not None:
            return value
    return None


def extract_confidence(completion: str) -> float | None:
    """Stated confidence in [0, 1], or None when absent or unparseable."""
    content = readers.last_enclosed(completion or "", "<confidence>", "</confidence>")
    value = normalize_number(content) if content is not None else None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def is_correct(predicted: float | None, gold: float | None, rel_tol: float = 1e-6) -> bool:
    if predicted is None or gold is None:
        return False
    return math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-6)


def has_working_out(completion: str, answer_format: str) -> bool:
    """Non-empty reasoning before the answer (the 'thinking proportion')."""
    return reader(FORMATS[answer_format].working_out)(completion or "")


def grade(completion: str, gold: float | None, answer_format: str) -> dict:
    """Every per-example field the evaluation and the grading CLI record."""
    strict = extract_strict(completion, answer_format)
    flexible = extract_flexible(completion)
    return {
        "extracted_strict": strict,
        "extracted_flexible": flexible,
        "correct_strict": is_correct(strict, gold),
        "correct_flexible": is_correct(flexible, gold),
        "has_answer": strict is not None,
        "has_working_out": has_working_out(completion, answer_format),
        "confidence": extract_confidence(completion),
    }


def grader(spec: dict):
    """The grading function of the task a prompt spec belongs to (its own, or `grade`):
    (completion, gold number, format) -> fields."""
    return get_task(spec.get("task", DEFAULT_TASK)).grade or grade
