"""`gsm-pipeline grade INPUT.jsonl -o OUTPUT.jsonl`: re-grade generations without a model.

Input rows have `completion` and `answer` (a GSM8K answer ending in '#### N', or a bare
number). With --lm-eval, each output row also carries lm-eval's gsm8k verdicts (strict-match, flexible-extract).
A malformed line is reported with its line number; the others are still graded. A gold answer that is
not a number is graded wrong and named. The output is written atomically and may never be the input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError, run_main
from ..grading.answers import final_number, grade
from ..grading.formats import FORMATS
from ..grading.metrics import GRADERS, rate
from ..grading.protocols import version
from ..rows import read_jsonl, write_jsonl


def grade_file(src: Path, answer_format: str, warnings: list[str] | None = None,
               lm_eval: bool = False) -> tuple[list[dict], list[str]]:
    graded, problems = [], []
    for lineno, row in read_jsonl(src, problems):
        if not isinstance(row.get("completion"), str) or "answer" not in row:
            problems.append(f"{src}:{lineno}: needs 'completion' (string) and 'answer'")
            continue
        gold = final_number(row["answer"]) if isinstance(row["answer"], (str, int, float)) else None
        if gold is None and warnings is not None:
            warnings.append(f"{src}:{lineno}: gold answer {row['answer']!r} is not a number; graded as wrong")
        result = grade(row["completion"], gold, answer_format)
        graded.append({**row, **{k: result[k] for k in ("extracted_strict", "extracted_flexible", "correct_strict",
                                                         "correct_flexible", "confidence")}})
    if not lm_eval or not graded:
        return graded, problems
    from ..grading import harness  # lm-eval's gsm8k graders beside ours, each row's `answer` its target

    theirs = harness.grade([row["completion"] for row in graded], graded)
    return [{**row, **verdicts} for row, verdicts in zip(graded, theirs)], problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Re-grade completions without a model.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("input", help="JSONL with completion and answer per line")
    parser.add_argument("-o", "--output", required=True, help="graded JSONL")
    parser.add_argument("--answer-format", default="tagged", choices=list(FORMATS),
                        help="the format the strict extractor expects")
    parser.add_argument("--lm-eval", action="store_true",
                        help="also grade with lm-evaluation-harness's gsm8k filters and metric (the lm-eval extra)")
    args = parser.parse_args(argv)
    if args.lm_eval and version() is None:
        raise DataError("--lm-eval needs lm-eval: pip install 'gsm-pipeline[lm-eval]'")
    src, out = Path(args.input), Path(args.output)
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise DataError(f"{out}: -o names the input file; grading would overwrite it (give another output)")
    above = next((folder for folder in out.parents if folder.exists()), None)
    if above is not None and not above.is_dir():
        raise DataError(f"-o {out}: {above} is a file, not a folder")
    warnings: list[str] = []
    graded, problems = grade_file(src, args.answer_format, warnings, lm_eval=args.lm_eval)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not graded and not problems:
        raise DataError(f"{src}: no rows to grade (n=0)")
    if not graded:  # every line malformed: an error, not accuracies of nothing
        raise DataError(f"{src}: no valid line to grade ({len(problems)} malformed)")
    write_jsonl(out, graded)
    n = len(graded)
    shown = "  ".join(f"{kind.replace('lmeval_', 'lm-eval ')} {rate([r[f'correct_{kind}'] for r in graded]):.3f}"
                      for kind in GRADERS if f"correct_{kind}" in graded[0])
    print(f"{shown}  n={n}  malformed={len(problems)}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
