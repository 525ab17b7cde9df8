"""Numbers in GSM-style answers: '$1,234.50' -> 1234.5, the gold value after `####`, the worked solution
without calculator annotations. Data preparation and grading both read them; nothing a grader calls raises
(`format_number`, which writes prepared answers, refuses what is not a number).

Values are exact rationals (`Fraction`): GSM8K answers are exact numbers, and a float cannot tell 12345678901234567
from 12345678901234568, nor does a relative tolerance tell 1450001 from 1450000. Records hold them as JSON numbers
(`as_json`: an int when whole, a float where it prints exactly, else the exact text).
"""
from __future__ import annotations

import re
from decimal import Decimal, localcontext
from fractions import Fraction

_FRACTION = re.compile(r"^(-?\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)(e-?\d+)?$")  # no nested quantifiers: linear
_CALCULATOR = re.compile(r"<<[^<>]*>>")
MAX_NUMBER_CHARS = 64  # no answer is longer; longer "numbers" are digit floods, not answers
FLOAT_MAX = Fraction(2) ** 1024  # the grader's range: what a float holds (records are JSON numbers)


def exact_number(text: str | None) -> Fraction | None:
    """'$1,234.50' -> 2469/2, '-3/4' -> -3/4, '45%' -> 45, '12.' -> 12; None if not a number or beyond a float."""
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
        den = Fraction(match.group(2))
        value = Fraction(match.group(1)) / den if den else None
    elif _NUMBER.match(s) and len(s.partition("e")[2]) <= 4:  # 1e99999 would cost seconds to build exactly
        value = Fraction(s)
    else:
        return None
    return value if value is not None and abs(value) < FLOAT_MAX else None


def exact(value: Fraction | int | float | str | None) -> Fraction | None:
    """Any number a record or a caller holds, exactly: a float is read as the decimal it prints as (the one it
    was parsed from), never as its binary expansion."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (Fraction, int)):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(repr(value)) if value == value and abs(value) != float("inf") else None
    return exact_number(value)


def as_json(value: Fraction | None) -> int | float | str | None:
    """A value for a JSON record, exactly: an int when whole (at any size), a float where the decimal it prints as
    is the value (1.5, 0.1), else the canonical text ('1/3', '12345678901234567.5'), which `exact` reads back."""
    if value is None:
        return None
    if value.denominator == 1:
        return value.numerator
    nearest = float(value)
    return nearest if exact(nearest) == value else format_number(value)


def format_number(value: Fraction | int | float | str) -> str:
    """The canonical text of a number, exactly: '1450000', '1200.5', '-0.75'; '1/3' where no decimal ends."""
    v = exact(value)
    if v is None:
        raise ValueError(f"not a number: {value!r}")
    if v.denominator == 1:
        return str(v.numerator)
    rest = v.denominator
    for prime in (2, 5):
        while rest % prime == 0:
            rest //= prime
    if rest != 1:
        return f"{v.numerator}/{v.denominator}"
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_NUMBER_CHARS + 10  # enough digits for any terminating value a 64-character text holds
        return format((Decimal(v.numerator) / Decimal(v.denominator)).normalize(), "f")


def normalize_number(text: str | None) -> float | None:
    """The number as a float (for display, confidences and records), None if not a number."""
    value = exact_number(text)
    return float(value) if value is not None else None


def final_number(answer: str | int | float | None) -> Fraction | None:
    """Gold value of a GSM8K-style answer ('... #### 42') or a bare number, exactly."""
    if answer is None:
        return None
    if isinstance(answer, (int, float)):
        return exact(answer)
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return exact_number(text)


def split_gsm8k_answer(answer: str) -> tuple[str, str]:
    """('reasoning', 'final') from a GSM8K answer; calculator annotations <<...>> removed."""
    reasoning, _, final = str(answer).rpartition("####")
    return _CALCULATOR.sub("", reasoning).strip(), final.strip()
