"""Numbers in GSM-style answers: '$1,234.50' -> 1234.5, the gold value after `####`, the worked solution
without calculator annotations. Data preparation and grading both read them; nothing here raises."""
from __future__ import annotations

import math
import re

_FRACTION = re.compile(r"^(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)(e-?\d+)?$")  # no nested quantifiers: linear
_CALCULATOR = re.compile(r"<<[^<>]*>>")
MAX_NUMBER_CHARS = 64  # no answer is longer; longer "numbers" are digit floods, not answers


def normalize_number(text: str | None) -> float | None:
    """'$1,234.50' -> 1234.5, '-3/4' -> -0.75, '45%' -> 45.0, '12.' -> 12.0; None if not a number."""
    if text is None:
        return None
    s = str(text).strip().replace(",", "").replace("$", "").replace(" ", "")
    s = s.rstrip(".%").lstrip("+")
    if s.startswith("\\$"):
        s = s[2:]
    if not s or len(s) > MAX_NUMBER_CHARS:
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
