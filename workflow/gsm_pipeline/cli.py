"""`gsm-pipeline COMMAND ...`: one console command over the thin entry points.

Subcommands import their module only when called, so `gsm-pipeline grade` never
pays for torch and the rules' code dependencies stay exact.
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys

from .errors import run_main
from .stages import KINDS

# The commands a user runs, then the workflow's own (each rule calls one with a --config only the Snakefile writes).
COMMANDS = {
    "evaluate": ("gsm_pipeline.jobs.evaluate", "evaluate any model folder"),
    "grade": ("gsm_pipeline.jobs.grade", "re-grade generations without a model"),
    "lm-eval": ("gsm_pipeline.jobs.lm_eval_run", "run lm-evaluation-harness beside our evaluation of a model"),
    "validate": ("gsm_pipeline.validate", "check config files (default: config.yaml); write the JSON schema"),
    "cost": ("gsm_pipeline.cost.command", "estimate each GPU job's tokens, GPU-hours and memory before a run"),
    "fetch-model": ("gsm_pipeline.jobs.fetch_model", "fetch and convert a base model into a safetensors folder"),
    "push": ("gsm_pipeline.jobs.push", "publish a trained model, its card and evaluations, to the Hugging Face Hub"),
}
WORKFLOW = {
    "prepare-data": ("gsm_pipeline.jobs.prepare_data", "write the SFT, RL and test sets"),
    # each stage kind's entry point (stages.py), by its module's name
    **{kind.module.replace("_", "-"): (f"gsm_pipeline.jobs.{kind.module}", kind.description)
       for kind in KINDS.values()},
    "report": ("gsm_pipeline.jobs.report", "build the HTML report and comparison.csv"),
}


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gsm-pipeline")
    except metadata.PackageNotFoundError:  # run from a checkout without installing it
        return "unknown (not installed)"


def usage() -> str:
    lines = ["usage: gsm-pipeline COMMAND [ARGS...]   (gsm-pipeline COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "the workflow's own steps (Snakemake runs them; see docs/contributing.md):"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in WORKFLOW.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] == "--version":
        print(f"gsm-pipeline {version()}")
        return
    known = {**COMMANDS, **WORKFLOW}
    if argv[0] not in known:
        close = difflib.get_close_matches(argv[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown command {argv[0]!r}{hint}\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(known[argv[0]][0])
    sys.argv[0] = f"gsm-pipeline {argv[0]}"
    try:
        run_main(lambda: module.main(argv[1:]))
        sys.stdout.flush()  # a reader that stopped early shows here, not at exit
    except BrokenPipeError:  # the reader (`| head`) stopped reading: end quietly, as a Unix filter does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
