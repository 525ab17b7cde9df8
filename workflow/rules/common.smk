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
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from snakemake.exceptions import WorkflowError
from gsm_pipeline.preflight import preflight
from gsm_pipeline.sources import module_sources
from gsm_pipeline.stages import STAGES

DEFAULT_CONFIG = "config.yaml"

try:
    # Snakemake has already read --configfile files (leniently) into `config`; read them again strictly.
    for path in workflow.config_settings.configfiles or []:
        load_config_file(path)
    if Path(DEFAULT_CONFIG).exists() or not workflow.config_settings.configfiles:
        merged = merge(load_config_file(DEFAULT_CONFIG), config)
        config.clear()
        config.update(merged)
    CFG = validate_config(config)
    # The plan, built once: each stage folder's typed job, parent and inputs, checked as its job would check
    # them (TRL's own config checks, the stage's length against its curve and save steps) before any job.
    PLAN = {planned.run: planned for planned in preflight(CFG)}
    # Snakemake knows its targets only after parsing, so results/ paths on the command line are checked here.
    for target in sys.argv[1:]:
        layout.check_target(target, CFG)
except ConfigError as exc:
    raise SystemExit(f"config error: {exc}")

TESTSETS = CFG.data.test_sets()
PROMPTS = CFG.prompts()
BASE_MODEL = layout.BASE_MODEL
CONDA_ENV = "../../envs/pipeline.yaml"  # relative to workflow/rules/; used with --sdm conda


def all_cores(wildcards):
    """A heavy job takes every core Snakemake was given; without --cores (snakemake --report, which runs no job)
    one, where Snakemake would stop and ask for them."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def one_of(values):
    return "|".join(re.escape(v) for v in values)


TRAINED = list(PLAN)  # every <stage>-<chain> folder this config trains, in declaration order
EVALUATIONS = layout.evaluations(CFG)  # every (run, prompt) evaluated: base, each stage, each curve point

wildcard_constraints:
    chain=layout.CHAIN,
    testset=one_of(TESTSETS),
    run=one_of(dict.fromkeys(run for run, _ in EVALUATIONS)),  # base, every trained stage, its curve points
    prompt=one_of(PROMPTS),
    teacher="[^/]+",


def as_arg(job):
    """A job's typed settings as a params value Snakemake can compare between runs, quoted for the shell."""
    return shlex.quote(job.as_json() if hasattr(job, "as_json") else json.dumps(job, sort_keys=True))


def code(job, task=True):
    """The job's module (gsm_pipeline/jobs/<job>.py) and every package module it imports, plus (for jobs that
    read, prompt or grade problems) the configured task's module, which the registry loads by name: a code edit
    replans exactly its stages."""
    from gsm_pipeline.tasks import TASKS

    return module_sources(f"jobs.{job}", *([TASKS[CFG.data.source].removeprefix("gsm_pipeline.")] if task else []))


# The report page's template is code the report job runs, though not a module it imports.
REPORT_TEMPLATE = os.path.relpath(Path(PACKAGE_ROOT) / "gsm_pipeline" / "reporting" / "templates" / "report.html.j2")


def local_data_files():
    """User data files are inputs of prepare_data, so editing one reruns it (and what depends on it)."""
    from gsm_pipeline.tasks import get_task

    task = get_task(CFG.data.source).input_files(CFG.data, CFG.data_job().socratic)
    return [*task, *CFG.data.extra_test_files.values()]


def planned(stage, wildcards):
    """The plan of the {chain} folder of this stage (every row sharing it has its job settings)."""
    run = f"{stage}-{wildcards.chain}"
    if run not in PLAN:
        layout.run_experiment(CFG, stage, wildcards.chain)  # says which folders this config trains
    return PLAN[run]


def confidence_model():
    ref = CFG.confidence.model
    return BASE_MODEL if ref == "base" else layout.model_dir(CFG, *ref.split("/"))


def training_inputs(stage):
    """Inputs of a training stage: its parent model, its data split, its job's code and what else its job reads
    (`TrainingJob.reads`: e.g. a confidence row's targets, a teacher model)."""
    def inputs(wildcards):
        plan = planned(stage, wildcards)
        return {"parent": plan.parent_model, "data": f"results/data/{STAGES[stage].data}.jsonl",
                "code": code(STAGES[stage].entry.module), **plan.reads}
    inputs.__name__ = f"{stage}_inputs"
    return inputs


def training_job(stage):
    """The stage's typed job, as the one JSON argument its entry point parses. Derived from the output (Snakemake
    then does not track it as a params change): the folder's chain already names every setting that changes the
    weights, so a change of one plans the stage under a new folder, while a bookkeeping setting the chain leaves
    out (report_to, logging or save cadence, hub and run names) plans nothing."""
    def job(wildcards, output):
        return as_arg(planned(stage, wildcards).job)
    job.__name__ = f"{stage}_job"
    return job


def checkpoints_dir(wildcards, output):
    """Stage-local checkpoints beside (never inside) the model output, which Snakemake deletes when incomplete."""
    return str(Path(output.model).parent / "checkpoints")


# Relative to the working directory (the checkout), so moving the checkout does not change the command.
ACCELERATE_CONFIGS = Path(os.path.relpath(Path(workflow.basedir) / "envs" / "accelerate"))


def launch(stage):
    """`accelerate launch` with the stage's config file, one process per GPU the job was given (resources.gpu,
    so a --set-resources override reaches it too; 1 on CPU unless stages.<stage>.processes says otherwise),
    and a free port per job."""
    def command(wildcards, resources):
        job = planned(stage, wildcards).job
        processes = job.processes or max(1, int(resources.gpu))
        return (f"accelerate launch --config_file {shlex.quote(str(ACCELERATE_CONFIGS / f'{job.launcher}.yaml'))} "
                f"--num_processes {processes} --main_process_port $(python -m gsm_pipeline.launch)")
    return command


def gpus(stage):
    """GPUs a training job asks for (stages.<stage>.gpus, or the row's overrides)."""
    def count(wildcards):
        return planned(stage, wildcards).job.gpus
    count.__name__ = f"{stage}_gpus"
    return count


# The Slurm partitions a job goes to by its GPU count (jobs without GPUs are never queued for a GPU); where a
# cluster names them otherwise, export GSM_SLURM_CPU_PARTITION / GSM_SLURM_GPU_PARTITION before snakemake.
SLURM_PARTITIONS = (os.environ.get("GSM_SLURM_CPU_PARTITION", "cpu"), os.environ.get("GSM_SLURM_GPU_PARTITION", "gpu"))


def partition(count):
    """The Slurm partition of a job asking for `count` GPUs (a number, or a function of the wildcards)."""
    def choose(wildcards):
        return SLURM_PARTITIONS[bool(count(wildcards) if callable(count) else count)]
    return choose


def reads_flags(wildcards, input):
    """What else a stage reads (its inputs besides parent, data and code), as its job's flags: `--<name> PATH`
    (e.g. --confidence-targets, --sft-rows)."""
    return " ".join(f"--{name.replace('_', '-')} {shlex.quote(input[name])}" for name in input.keys()
                    if name not in ("parent", "data", "code"))


def eval_outputs(name="metrics.json"):
    return [f"{layout.eval_dir(run, prompt, testset)}/{name}" for run, prompt in EVALUATIONS for testset in TESTSETS]


def training_logs():
    return [f"results/{run}/log_history.json" for run in TRAINED]


def eval_inputs(wildcards):
    """A curve point (<stage>-<chain>/step-N) waits for its stage's training, which keeps that step's model; one
    whose stage has trained but whose kept model is gone can only come back by training the stage again."""
    stage, folder, step = layout.split_run(wildcards.run)
    model = BASE_MODEL if folder == "base" else f"results/{folder}/model"
    kept = layout.curve_model(folder, step) if step is not None else None
    if kept and Path(model).is_dir() and not Path(kept).is_dir():
        raise WorkflowError(f"{kept}: this learning-curve model is missing, and only its stage's training keeps it: "
                            f"train the stage again with `snakemake --cores all --forcerun {stage} {model}`")
    # a trained model is also scored against the base (its KL at evaluation, both ways): the base model is an
    # input too, and the base's evaluation of this test set, which samples the base's own completions
    base_eval = os.path.join(base_eval_dir(wildcards), "metrics.json")
    reference = {"reference": BASE_MODEL, "base_eval": base_eval} if folder != "base" and CFG.evaluation.kl_to_base \
        else {}
    return {"model": model, "data": f"results/data/test/{wildcards.testset}.jsonl",
            "fewshot": "results/data/fewshot.jsonl", "code": code("evaluate"), **reference}


def base_eval_dir(wildcards):
    """The base model's evaluation of this prompt and test set (its samples are the KL's reference)."""
    return layout.eval_dir("base", wildcards.prompt, wildcards.testset)


def reference_flag(wildcards, input):
    """With kl_to_base: the base model's evaluation writes its own samples beside its metrics; a trained model's
    reads them (and the base model) to score both KLs."""
    if not CFG.evaluation.kl_to_base:
        return ""
    samples = os.path.join(base_eval_dir(wildcards), "reference_samples.jsonl")
    reference = f"--reference {shlex.quote(input.reference)} " if "reference" in input.keys() else ""
    return f"{reference}--reference-samples {shlex.quote(samples)}"


def eval_model(wildcards, input):
    """A curve point's model: `<stage>-<chain>/step-N/model`, kept by its stage's training job (not an output)."""
    stage, folder, step = layout.split_run(wildcards.run)
    return layout.curve_model(folder, step) if step is not None else input.model


def eval_meta(wildcards):
    """The labels an evaluation's metrics.json carries (stage, prompt, run, test set, curve step)."""
    stage, _, step = layout.split_run(wildcards.run)
    return as_arg({"stage": stage, "prompt_key": wildcards.prompt, "run": wildcards.run, "testset": wildcards.testset,
                   **({"step": step} if step is not None else {})})


def eval_job(wildcards):
    return as_arg(CFG.eval_job(PROMPTS[wildcards.prompt], layout.eval_samples(CFG, wildcards.run)))


def targets_job(wildcards):
    return as_arg(CFG.targets_job(PROMPTS[wildcards.prompt]))


def output_folder(wildcards, output):
    return str(Path(output.metrics).parent)
