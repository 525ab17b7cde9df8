"""Answer extraction and comparison. Nothing here raises on any input string, and everything is linear in the
completion's length (a GRPO policy can emit 200,000 characters of spaces or repeated tags).

strict: the format the prompt asked for: `#### N` (lm-evaluation-harness's strict regex), the last closed
`<SOLUTION>N</SOLUTION>` (markdown emphasis around N allowed), the last balanced `\\boxed{...}` (parsed by HF
math-verify, so `\\boxed{\\$18}`, `\\boxed{1{,}000}` and `\\boxed{18 \\text{ dollars}}` count).
flexible: the last number in the text (lm-evaluation-harness's regex), ignoring any
`<confidence>` value so a stated confidence is never mistaken for the answer.
"""
from __future__ import annotations

import math
import re

from .numerals import MAX_NUMBER_CHARS, final_number, normalize_number, split_gsm8k_answer  # noqa: F401
from .tasks import DEFAULT_TASK, get_task

GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-eval's strict-match
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval's flexible-extract
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


def parse_latex_number(content: str) -> float | None:
    """A boxed answer's value: math-verify (HF's LaTeX answer parser) for short content, else plain cleanup."""
    if len(content) <= MAX_NUMBER_CHARS:
        try:
            from math_verify import LatexExtractionConfig, parse

            for expr in parse(f"\\boxed{{{content}}}", extraction_config=[LatexExtractionConfig()],
                              parsing_timeout=None):
                try:
                    value = float(expr)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    return value
        except Exception:  # math-verify failing on odd LaTeX must never fail grading
            pass
    return normalize_number(content.replace("{,}", ",").replace("\\%", "%").replace("\\$", "$"))


def extract_strict(completion: str, answer_format: str) -> float | None:
    text = completion or ""
    if answer_format == "gsm8k":
        matches = GSM8K_STRICT.findall(text)
        return normalize_number(matches[-1]) if matches else None
    if answer_format == "tagged":
        content = last_enclosed(text, "<SOLUTION>", "</SOLUTION>")
        return normalize_number(content.strip(_MARKDOWN)) if content is not None else None
    content = last_boxed(text)
    return parse_latex_number(content) if content is not None else None


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
    content = last_enclosed(completion or "", "<confidence>", "</confidence>")
    value = normalize_number(content) if content is not None else None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def is_correct(predicted: float | None, gold: float | None, rel_tol: float = 1e-6) -> bool:
    if predicted is None or gold is None:
        return False
    return math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-6)


def has_working_out(completion: str, answer_format: str) -> bool:
    """Non-empty reasoning before the answer (the 'thinking proportion')."""
    text = completion or ""
    if answer_format == "tagged":
        start = text.find("<start_working_out>")
        end = text.find("<end_working_out>", start) if start >= 0 else -1
        return end >= 0 and bool(text[start + len("<start_working_out>"):end].strip())
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


def grader(spec: dict):
    """The grading function of the task a prompt spec belongs to (its own, or `grade`):
    (completion, gold number, format) -> fields."""
    return get_task(spec.get("task", DEFAULT_TASK)).grade or grade
