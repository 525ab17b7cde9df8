"""`gsm-pipeline grade INPUT.jsonl -o OUTPUT.jsonl`: re-grade generations without a model.

Input rows have `completion` and `answer` (a GSM8K answer ending in '#### N', or a bare
number). A malformed line is reported with its line number; the others are still graded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .answers import final_number, grade
from .data import read_jsonl, write_jsonl
from .errors import run_main


def grade_file(src: Path, answer_format: str) -> tuple[list[dict], list[str]]:
    graded, problems = [], []
    for lineno, row in read_jsonl(src, problems):
        if not isinstance(row.get("completion"), str) or "answer" not in row:
            problems.append(f"{src}:{lineno}: needs 'completion' (string) and 'answer'")
            continue
        result = grade(row["completion"], final_number(str(row["answer"])), answer_format)
        graded.append({**row, **{k: result[k] for k in ("extracted_strict", "extracted_flexible", "correct_strict",
                                                         "correct_flexible", "confidence")}})
    return graded, problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-grade completions without a model.")
    parser.add_argument("input", help="JSONL with completion and answer per line")
    parser.add_argument("-o", "--output", required=True, help="graded JSONL")
    parser.add_argument("--answer-format", default="tagged", choices=["tagged", "gsm8k", "boxed"],
                        help="the format the strict extractor expects")
    args = parser.parse_args(argv)
    graded, problems = grade_file(Path(args.input), args.answer_format)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    write_jsonl(args.output, graded)
    n = len(graded)
    strict = sum(r["correct_strict"] for r in graded) / n if n else 0.0
    flexible = sum(r["correct_flexible"] for r in graded) / n if n else 0.0
    print(f"strict {strict:.3f}  flexible {flexible:.3f}  n={n}  malformed={len(problems)}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
