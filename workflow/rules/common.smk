# Config validation and input functions; no rules live here.
import json
import os
import re
import shlex
import sys
from pathlib import Path

# The Snakefile and every job run this checkout's package, installed or not: each job's shell puts it first.
PACKAGE_ROOT = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_ROOT)
# (braces doubled twice: once for this f-string, once for Snakemake's own formatting of the command)
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(PACKAGE_ROOT)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from gsm_pipeline import layout
from gsm_pipeline.config import STAGES, config_hash, validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.sources import module_sources

try:
    CFG = validate_config(config)
    # Snakemake knows its targets only after parsing, so results/ paths on the command line are checked here.
    for target in sys.argv[1:]:
        layout.check_target(target, CFG)
except ConfigError as exc:
    raise SystemExit(f"config error: {exc}")

EXPERIMENTS = list(CFG.experiments)
TESTSETS = CFG.data.test_sets()
PROMPTS = CFG.prompts()
BASE_MODEL = layout.BASE_MODEL
CONDA_ENV = "../../envs/pipeline.yaml"  # relative to workflow/rules/; used with --sdm conda


def one_of(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    testset=one_of(TESTSETS),
    run=f"base/({one_of(PROMPTS)})|({one_of(EXPERIMENTS)})/({one_of(STAGES)})",
    prompt=one_of(PROMPTS),


def as_arg(obj):
    """A params value Snakemake can compare between runs, quoted for the shell."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def code(module):
    """The entry module and every package module it imports: code edits replan the stage."""
    return module_sources(module)


def local_data_files():
    """User data files are inputs of prepare_data, so editing one reruns it (and what depends on it)."""
    d = CFG.data
    files = list(d.extra_test_files.values())
    if d.source == "jsonl":
        files += [d.train_file, d.test_file]
    elif d.source == "gsm8k" and d.gsm8k_path:
        suffix = "" if d.gsm8k_config == "main" else "_socratic"
        files += [f"{d.gsm8k_path}/{split}{suffix}.jsonl" for split in ("train", "test")]
    return files


def model_dir(experiment, stage):
    """Where an experiment's stage lives: stages trained identically are shared (see layout.py)."""
    return layout.model_dir(CFG, experiment, stage)


def parent_stage(experiment, stage):
    return layout.parent_stage(CFG, experiment, stage)


def targets_file(experiment):
    return f"results/confidence_targets/{CFG.experiments[experiment].prompt_key()}.jsonl"


def confidence_model():
    ref = CFG.confidence.model
    return BASE_MODEL if ref == "base" else model_dir(*ref.split("/"))


def sft_inputs(stage):
    """Inputs of an SFT stage; confidence experiments also read the measured confidence targets."""
    def inputs(wildcards):
        exp = wildcards.experiment
        files = {"parent": model_dir(exp, parent_stage(exp, stage)), "data": f"results/data/{stage}.jsonl",
                 "code": code("train_sft")}
        if CFG.experiments[exp].confidence:
            files["targets"] = targets_file(exp)
        return files
    return inputs


# Relative to the working directory (the checkout), so moving the checkout does not change the command.
ACCELERATE_CONFIGS = Path(os.path.relpath(Path(workflow.basedir) / "envs" / "accelerate"))


def launch(stage):
    """`accelerate launch` with the stage's config file, one process per GPU the job was given (resources.gpu,
    so a --set-resources override reaches it too; 1 on CPU unless stages.<stage>.processes says otherwise),
    and a free port per job."""
    st = getattr(CFG.stages, stage)

    def command(wildcards, resources):
        processes = st.processes or max(1, int(resources.gpu))
        return (f"accelerate launch --config_file {ACCELERATE_CONFIGS / st.launcher}.yaml "
                f"--num_processes {processes} --main_process_port $(python -m gsm_pipeline.launch)")
    return command


def gpus(stage):
    return getattr(CFG.stages, stage).gpus


def targets_flag(wildcards, input):
    return f"--confidence-targets {input.targets}" if "targets" in input.keys() else ""


def eval_runs():
    """Every evaluated model once: base once per prompt, then each distinct trained stage."""
    return sorted({layout.stage_run(CFG, e, "base") for e in EXPERIMENTS} | set(layout.trained_runs(CFG)))


def eval_outputs(name="metrics.json"):
    return expand("results/{run}/eval/{testset}/{name}", run=eval_runs(), testset=TESTSETS, name=name)


def training_logs():
    return [f"results/{run}/log_history.json" for run in layout.trained_runs(CFG)]


def eval_inputs(wildcards):
    head, stage = wildcards.run.split("/")
    model = BASE_MODEL if head == "base" else f"results/{head}/{stage}/model"
    return {"model": model, "data": f"results/data/test/{wildcards.testset}.jsonl", "code": code("evaluate")}


def eval_params(wildcards):
    head, tail = wildcards.run.split("/")
    if head == "base":
        return {"prompt": PROMPTS[tail], "meta": {"experiment": "base", "stage": "base", "prompt_key": tail}}
    return {"prompt": CFG.prompt_spec(head),
            "meta": {"experiment": head, "stage": tail, "prompt_key": CFG.experiments[head].prompt_key()}}


def report_layout():
    """Per experiment: which evaluation run holds each of its stages (shared stages point at their owner)."""
    out = {}
    for e, exp in CFG.experiments.items():
        stages = ["base", *exp.stages]
        out[e] = {"runs": {s: layout.stage_run(CFG, e, s) for s in stages}, "testsets": TESTSETS,
                  "parents": {s: layout.stage_run(CFG, e, parent_stage(e, s)) for s in exp.stages},
                  "confidence": exp.confidence, "prompt_key": exp.prompt_key()}
    return out
