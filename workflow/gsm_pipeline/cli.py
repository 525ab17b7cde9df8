"""`gsm-pipeline COMMAND ...`: one console command over the thin entry points.

Subcommands import their module only when called, so `gsm-pipeline grade` never
pays for torch and the rules' code dependencies stay exact.
"""
from __future__ import annotations

import importlib
import sys

from .errors import run_main

COMMANDS = {
    "prepare-data": ("gsm_pipeline.jobs.prepare_data", "write the SFT, GRPO and test sets"),
    "fetch-model": ("gsm_pipeline.jobs.fetch_model", "fetch and convert the base model"),
    "train-sft": ("gsm_pipeline.jobs.train_sft", "supervised fine-tuning (TRL SFTTrainer)"),
    "train-grpo": ("gsm_pipeline.jobs.train_grpo", "the RL stage (TRL GRPOTrainer, or RLOOTrainer)"),
    "evaluate": ("gsm_pipeline.jobs.evaluate", "evaluate any model folder"),
    "grade": ("gsm_pipeline.jobs.grade", "re-grade generations without a model"),
    "lm-eval": ("gsm_pipeline.jobs.lm_eval_run", "run lm-evaluation-harness beside our evaluation of a model"),
    "report": ("gsm_pipeline.jobs.report", "build the HTML report and comparison.csv"),
    "validate": ("gsm_pipeline.validate", "validate a config file; write the JSON schema"),
}


def usage() -> str:
    lines = ["usage: gsm-pipeline COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[argv[0]][0])
    sys.argv[0] = f"gsm-pipeline {argv[0]}"
    run_main(lambda: module.main(argv[1:]))


if __name__ == "__main__":
    main()
