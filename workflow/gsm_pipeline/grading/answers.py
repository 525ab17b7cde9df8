"""Answer extraction and comparison. Nothing here raises on any input string, and everything is linear in the
completion's length (a GRPO policy can emit 200,000 characters of spaces or repeated tags).

strict: the format the prompt asked for, read by that format's entry in `formats.FORMATS`: `#### N`
(lm-evaluation-harness's strict regex), the last closed `<SOLUTION>N</SOLUTION>` (markdown emphasis around N
allowed), the last balanced `\\boxed{...}` (parsed by HF math-verify, so `\\boxed{1{,}000}` counts).
flexible: the last number in the text (lm-evaluation-harness's regex), ignoring any
`<confidence>` value so a stated confidence is never mistaken for the answer.
Answers and gold values are exact (`numerals.exact_number`) and compared exactly: `1,200.50` = `1200.5`,
`72.0` = `72`, and `1450001` is not `1450000` at any magnitude.
"""
from __future__ import annotations

import re
from fractions import Fraction

from ..tasks import get_task
from . import readers
from .formats import FORMATS, Reader
from .numerals import as_json, exact, exact_number, final_number, normalize_number, split_gsm8k_answer  # noqa: F401  (re-exported)

FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval's flexible-extract


def reader(named: str | Reader) -> Reader:
    """A format's reader: a function of readers.py by name, or the callable itself."""
    return getattr(readers, named) if isinstance(named, str) else named


def extract_strict(completion: str, answer_format: str) -> Fraction | None:
    return exact(reader(FORMATS[answer_format].strict)(completion or ""))  # a reader may return a float


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


def extract_flexible(completion: str) -> Fraction | None:
    text = without_confidence(completion or "")
    for groups in reversed(FLEXIBLE_PATTERN.findall(text)):
        value = exact_number(groups[0] or groups[1])
        if value is not None:
            return value
    return None


def extract_confidence(completion: str) -> float | None:
    """Stated confidence in [0, 1], or None when absent or unparseable."""
    content = readers.last_enclosed(completion or "", "<confidence>", "</confidence>")
    value = normalize_number(content) if content is not None else None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def is_correct(predicted: Fraction | float | None, gold: Fraction | float | None) -> bool:
    """Exactly equal after normalisation (a float, as records hold it, counts as the decimal it prints as)."""
    said, truth = exact(predicted), exact(gold)
    return said is not None and truth is not None and said == truth


def has_working_out(completion: str, answer_format: str) -> bool:
    """Non-empty reasoning before the answer (the 'thinking proportion')."""
    return reader(FORMATS[answer_format].working_out)(completion or "")


def grade(completion: str, gold: Fraction | float | None, answer_format: str) -> dict:
    """Every per-example field the evaluation and the grading CLI record (extracted values as JSON numbers)."""
    strict = extract_strict(completion, answer_format)
    flexible = extract_flexible(completion)
    return {
        "extracted_strict": as_json(strict),
        "extracted_flexible": as_json(flexible),
        "correct_strict": is_correct(strict, gold),
        "correct_flexible": is_correct(flexible, gold),
        "has_answer": strict is not None,
        "has_working_out": has_working_out(completion, answer_format),
        "confidence": extract_confidence(completion),
    }


def grader(task: str):
    """The grading function of a task (its own, or `grade`): (completion, exact gold number, format) -> fields."""
    return get_task(task).grade or grade
