"""Answer extraction and comparison. Nothing here raises on any input string.

strict: the format the prompt asked for (`#### N`, `<SOLUTION>N</SOLUTION>`, `\\boxed{N}`).
flexible: the last number in the text (lm-evaluation-harness's regex), ignoring any
`<confidence>` value so a stated confidence is never mistaken for the answer.
"""
from __future__ import annotations

import math
import re

STRICT_PATTERNS = {
    "gsm8k": re.compile(r"#### (\-?[0-9\.\,]+)"),  # lm-eval's strict-match
    "tagged": re.compile(r"<SOLUTION>\s*(.*?)\s*</SOLUTION>", re.DOTALL),
    "boxed": re.compile(r"\\boxed\{([^{}]*)\}"),
}
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval's flexible-extract
CONFIDENCE_PATTERN = re.compile(r"<confidence>\s*(.*?)\s*</confidence>", re.DOTALL)
# A confidence tag, closed or cut off by the token budget: never part of the answer.
CONFIDENCE_TAG = re.compile(r"<confidence>.*?(</confidence>|$)", re.DOTALL)
_FRACTION = re.compile(r"^(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$")
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def normalize_number(text: str | None) -> float | None:
    """'$1,234.50' -> 1234.5, '-3/4' -> -0.75, '45%' -> 45.0, '12.' -> 12.0; None if not a number."""
    if text is None:
        return None
    s = str(text).strip().replace(",", "").replace("$", "").replace(" ", "")
    s = s.rstrip(".%").lstrip("+")
    if s.startswith("\\$"):
        s = s[2:]
    if not s:
        return None
    match = _FRACTION.match(s)
    if match:
        den = float(match.group(2))
        return float(match.group(1)) / den if den else None
    if not _NUMBER.match(s):
        return None
    value = float(s)
    return value if math.isfinite(value) else None


def final_number(answer: str) -> float | None:
    """Gold value of a GSM8K-style answer ('... #### 42') or a bare number."""
    if answer is None:
        return None
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return normalize_number(text)


def split_gsm8k_answer(answer: str) -> tuple[str, str]:
    """('reasoning', 'final') from a GSM8K answer; calculator annotations <<...>> removed."""
    reasoning, _, final = str(answer).rpartition("####")
    return _CALCULATOR.sub("", reasoning).strip(), final.strip()


def extract_strict(completion: str, answer_format: str) -> float | None:
    matches = STRICT_PATTERNS[answer_format].findall(completion or "")
    return normalize_number(matches[-1]) if matches else None


def extract_flexible(completion: str) -> float | None:
    text = CONFIDENCE_TAG.sub(" ", completion or "")
    for groups in reversed(FLEXIBLE_PATTERN.findall(text)):
        value = normalize_number(groups[0] or groups[1])
        if value is not None:
            return value
    return None


def extract_confidence(completion: str) -> float | None:
    """Stated confidence in [0, 1], or None when absent or unparseable."""
    matches = CONFIDENCE_PATTERN.findall(completion or "")
    value = normalize_number(matches[-1]) if matches else None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def is_correct(predicted: float | None, gold: float | None, rel_tol: float = 1e-6) -> bool:
    if predicted is None or gold is None:
        return False
    return math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-6)


def has_working_out(completion: str, answer_format: str) -> bool:
    """Non-empty reasoning before the answer (the 'thinking proportion')."""
    text = completion or ""
    if answer_format == "tagged":
        match = re.search(r"<start_working_out>(.*?)<end_working_out>", text, re.DOTALL)
        return bool(match and match.group(1).strip())
    head = re.split(r"####|\\boxed\{", text, maxsplit=1)[0]
    return bool(head.strip()) and len(re.split(r"####|\\boxed\{", text, maxsplit=1)) > 1


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
