"""How each answer format is read: the strict answer and the working-out check that `formats.FORMATS` names.

A module apart from the registry, so that editing how answers are parsed replans grading (evaluations, GRPO,
confidence targets) but not plain SFT, which reads only the formats' instructions and targets. Every reader is
linear in the completion's length and never raises (a GRPO policy can emit 200,000 characters of spaces or
repeated tags).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from .numerals import FLOAT_MAX, MAX_NUMBER_CHARS, exact_number

GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-evaluation-harness's strict-match
_BRACES = re.compile(r"\\boxed\{|[{}]")
_MARKDOWN = "*_` \n\t"


def last_enclosed(text: str, opener: str, closer: str) -> str | None:
    """The text of the last closed opener...closer pair (the last closer, and the opener nearest before it)."""
    end = text.rfind(closer)
    start = text.rfind(opener, 0, end) if end >= 0 else -1
    return text[start + len(opener):end] if start >= 0 else None


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} whose braces balance, in one pass over the braces."""
    stack, last = [], None
    for match in _BRACES.finditer(text):
        token = match.group()
        if token == "}":
            if stack:
                boxed, start = stack.pop()
                if boxed:
                    last = text[start:match.start()]
        else:
            stack.append((token != "{", match.end()))
    return last


def parse_latex_number(content: str) -> Fraction | None:
    """A boxed answer's exact value: math-verify (HF's LaTeX answer parser) for short content, else plain cleanup.
    Only a rational value is an answer to compare exactly (an irrational one cannot equal a decimal gold)."""
    if len(content) <= MAX_NUMBER_CHARS:
        try:
            from math_verify import LatexExtractionConfig, parse

            for expr in parse(f"\\boxed{{{content}}}", extraction_config=[LatexExtractionConfig()],
                              parsing_timeout=None):
                value = _rational(expr)
                if value is not None:
                    return value
        except Exception:  # math-verify failing on odd LaTeX must never fail grading
            pass
    return exact_number(content.replace("{,}", ",").replace("\\%", "%").replace("\\$", "$"))


def _rational(expr) -> Fraction | None:
    """A sympy number as an exact Fraction (a Float by the decimal it prints), None for anything else."""
    if getattr(expr, "is_Rational", False):
        value = Fraction(int(expr.p), int(expr.q))
    elif getattr(expr, "is_Float", False):
        value = exact_number(str(expr))
    else:
        return None
    return value if value is not None and abs(value) < FLOAT_MAX else None


def tagged_answer(text: str) -> Fraction | None:
    content = last_enclosed(text, "<SOLUTION>", "</SOLUTION>")
    return exact_number(content.strip(_MARKDOWN)) if content is not None else None


def gsm8k_answer(text: str) -> Fraction | None:
    matches = GSM8K_STRICT.findall(text)
    return exact_number(matches[-1]) if matches else None


def boxed_answer(text: str) -> Fraction | None:
    content = last_boxed(text)
    return parse_latex_number(content) if content is not None else None


def tagged_working_out(text: str) -> bool:
    start = text.find("<start_working_out>")
    end = text.find("<end_working_out>", start) if start >= 0 else -1
    return end >= 0 and bool(text[start + len("<start_working_out>"):end].strip())


def text_before(*markers: str) -> Callable[[str], bool]:
    """Working out is whatever non-blank text comes before the first answer marker, when there is one."""
    pattern = re.compile("|".join(re.escape(m) for m in markers))

    def check(text: str) -> bool:
        found = pattern.search(text)
        return found is not None and bool(text[:found.start()].strip())
    return check


gsm8k_working_out = text_before("####")
boxed_working_out = text_before("\\boxed{")
