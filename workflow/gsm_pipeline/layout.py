"""How the experiment matrix maps onto result paths.

A trained stage's folder is named by what determines its weights: `results/<stage>-<chain>/`, where chain
hashes the stage's job settings and, recursively, its parent's. Two experiments that would train a stage
identically share that folder, and adding, removing or reordering rows (in any order of config files) never
moves an existing stage: the name depends on nothing else. A changed setting gets a new folder, so the model
trained before stays on disk and comes back if the setting is changed back.

Every evaluation is (model run, prompt, test set) at `results/<run>/eval/<prompt>/<testset>/`, where
run is `base` or `<stage>-<chain>`: the base model is evaluated once per distinct prompt.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from .config import PipelineConfig
from .errors import ConfigError
from .hashing import config_hash
from .prompts import prompt_key
from .settings.report import CurvePoint, Evaluation, ExperimentLayout, ReportJob, StageRun
from .stages import STAGE_NAMES
from .training.curve import step_folder

BASE_MODEL = "resources/model"
TEACHERS = "resources/teachers"  # fetched teacher models, by source ("owner--name")
# Top-level folders of results/ that are not models.
SHARED_FOLDERS = ("data", "confidence_targets", "report", "logs", "benchmarks")
CHAIN = "[0-9a-f]{8}"  # the {chain} wildcard
RUN_PATTERN = re.compile(rf"({'|'.join(STAGE_NAMES)})-({CHAIN})")
STEP_RUN = re.compile(rf"(({'|'.join(STAGE_NAMES)})-{CHAIN})/step-([0-9]+)")  # a learning-curve point's model


def parent_stage(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The stage a stage starts from ("base" for prep_sft); the RL stage's is per experiment."""
    return cfg.experiment(name).parent_of(stage)


def stage_chain(cfg: PipelineConfig, name: str, stage: str) -> list[dict[str, Any]]:
    """Everything that determines a stage's weights: its own job and, recursively, its parent's; and the chain of
    any other stage of the row its job reads (a teacher), so retraining that one moves this one."""
    parent = parent_stage(cfg, name, stage)
    own = cfg.stage_job(name, stage)
    reads = {flag: config_hash(stage_chain(cfg, name, other))[:8] for flag, other in own.read_stages().items()}
    return [*([] if parent == "base" else stage_chain(cfg, name, parent)),
            {**own.stamp(), **({"reads": reads} if reads else {})}]


def runs(cfg: PipelineConfig) -> dict[tuple[str, str], str]:
    """(experiment, stage) -> `<stage>-<chain>` for every stage of the matrix; one pass, computed once per
    config (input functions ask for it per job)."""
    if cfg._runs is None:
        cfg._runs = {(name, stage): f"{stage}-{config_hash(stage_chain(cfg, name, stage))[:8]}"
                     for name, exp in cfg.experiments.items() for stage in exp.stages}
    return cfg._runs


def stage_run(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The model an experiment's stage is: `base` or `<stage>-<chain>`."""
    if stage == "base":
        return "base"
    cfg.experiment(name)  # names an undeclared experiment in one line
    if (name, stage) not in runs(cfg):
        raise ConfigError(f"experiment {name!r} does not run {stage}")
    return runs(cfg)[(name, stage)]


def model_dir(cfg: PipelineConfig, name: str, stage: str) -> str:
    return BASE_MODEL if stage == "base" else f"results/{stage_run(cfg, name, stage)}/model"


def run_experiment(cfg: PipelineConfig, stage: str, chain: str) -> str:
    """The first experiment training `<stage>-<chain>`: any experiment sharing it has the same job settings,
    so which one the rule reads them from changes nothing on disk."""
    for (name, _), run in runs(cfg).items():
        if run == f"{stage}-{chain}":
            return name
    raise ConfigError(f"results/{stage}-{chain}: no experiment trains this stage with the settings in the "
                      "config (`gsm-pipeline validate CONFIG` lists every stage's folder)")


def teacher_dir(source: str) -> str:
    """Where a model source other than the base (a hub id; a local folder is read where it is) is fetched."""
    return source if Path(source).is_dir() else f"{TEACHERS}/{source.replace('/', '--')}"


def eval_dir(run: str, prompt: str, testset: str) -> str:
    return f"results/{run}/eval/{prompt}/{testset}"


def experiment_evaluations(cfg: PipelineConfig, name: str) -> list[Evaluation]:
    """Each (stage, eval prompt) of one experiment, base included, with the runs it is compared against and the
    key of the same prompt asked without the chat template (the report pairs the two)."""
    exp = cfg.experiment(name)
    out = []
    for stage in ["base", *exp.stages]:
        parent = "base" if stage == "base" else parent_stage(cfg, name, stage)
        for spec in exp.eval_specs(cfg.data.source):
            out.append(Evaluation(stage=stage, run=stage_run(cfg, name, stage), prompt=prompt_key(spec),
                                  prompt_without_template=prompt_key(spec.but(chat_template=False)),
                                  parent_run=stage_run(cfg, name, parent)))
    return out


def evaluations(cfg: PipelineConfig) -> list[tuple[str, str]]:
    """Every distinct (run, prompt) evaluated, in declaration order."""
    pairs = [(e.run, e.prompt) for n in cfg.experiments for e in experiment_evaluations(cfg, n)]
    pairs += [(c.run, c.prompt) for n in cfg.experiments for c in curve_evaluations(cfg, n)]
    return list(dict.fromkeys(pairs))


def curve_evaluations(cfg: PipelineConfig, name: str) -> list[CurvePoint]:
    """Each learning-curve point of one experiment (stages' eval_checkpoints), asked in the prompt the row trains
    with, as `<stage>-<chain>/step-<N>`: the model the training job kept at that optimizer step."""
    exp = cfg.experiment(name)
    out = []
    for stage in exp.stages:
        job = cfg.stage_job(name, stage)
        run = stage_run(cfg, name, stage)
        out += [CurvePoint(stage=stage, step=step, run=f"{run}/step-{step}", stage_run=run,
                           prompt=cfg.prompt_key(name)) for step in job.curve_steps()]
    return out


def curve_model(folder: str, step: int) -> str:
    """Where a stage folder's learning-curve model at `step` lives (its training job keeps it there)."""
    return str(step_folder(PurePosixPath("results", folder), step))


def split_run(run: str) -> tuple[str, str, int | None]:
    """(stage, the stage's folder, curve step or None) of an evaluated run: base, <stage>-<chain>[/step-N]."""
    if run == "base":
        return "base", "base", None
    step = STEP_RUN.fullmatch(run)
    if step:
        return step.group(2), step.group(1), int(step.group(3))
    return RUN_PATTERN.fullmatch(run).group(1), run, None


def eval_samples(cfg: PipelineConfig, run: str) -> int:
    """Samples per problem at an evaluation of `run` (base, <stage>-<chain> or a curve point): a stage's final
    evaluations sample evaluation.samples, or the most that any row training the stage asks for (its eval_samples:
    one folder serves them all); a curve point evaluation.curve_samples, if set, else as its stage; the base, whose
    samples every pass@k is read against, the most that anything asks for."""
    _, folder, step = split_run(run)
    if step is not None and cfg.evaluation.curve_samples is not None:
        return cfg.evaluation.curve_samples
    default = cfg.evaluation.samples
    if folder == "base":
        asked = [cfg.experiments[name].samples_at(stage) for name, stage in runs(cfg)] + [cfg.evaluation.curve_samples]
        return max([default, *(n for n in asked if n is not None)])
    asked = [cfg.experiments[name].samples_at(stage) for (name, stage), r in runs(cfg).items() if r == folder]
    return max((default if n is None else n for n in asked), default=default)


def trained_runs(cfg: PipelineConfig) -> list[str]:
    """Each distinct trained stage once, in declaration order."""
    return list(dict.fromkeys(runs(cfg).values()))


def stage_table(cfg: PipelineConfig) -> list[str]:
    """One line per (experiment, stage): where its model lives."""
    return [f"{name} {stage}: results/{run}/model" for (name, stage), run in runs(cfg).items()]


def report_job(cfg: PipelineConfig) -> ReportJob:
    """Per experiment, in declaration order: its evaluations (stage, run, prompt, parent run), the test sets,
    the variant values the report turns into columns and the swept ones; and the run's provenance."""
    out = []
    for name, exp in cfg.experiments.items():
        variant = exp.model_dump(exclude={"stages", "overrides", "lora", "sweep", "swept", "eval_chat_template",
                                          "eval_answer_format", "eval_protocols", "eval_samples",
                                          "chat_template_kwargs"})
        variant["seed"] = cfg.stage_job(name, "prep_sft").seed if exp.stages else cfg.seed
        variant["lora_r"] = {**cfg.lora.model_dump(), **exp.lora}["r"] if exp.finetune == "lora" else None
        stages = [StageRun(stage=st, run=stage_run(cfg, name, st), gpus=cfg.stage_config(name, st)["gpus"],
                           parent_run=stage_run(cfg, name, parent_stage(cfg, name, st))) for st in exp.stages]
        out.append(ExperimentLayout(name=name, evaluations=experiment_evaluations(cfg, name), stages=stages,
                                    testsets=cfg.data.test_sets(), variant=variant, swept=exp.swept,
                                    prompt_key=cfg.prompt_key(name), curve=curve_evaluations(cfg, name)))
    return ReportJob(experiments=out, provenance={"seed": cfg.seed, "config_hash": config_hash(cfg.model_dump())},
                     battery=list(cfg.data.battery))


def check_target(target: str, cfg: PipelineConfig) -> None:
    """A results/ path asked for on the command line must name a stage folder of this config, a prompt and a
    test set it declares; otherwise a one-line error replaces Snakemake's 'No rule to produce ...'. A path by
    experiment name (`results/tagged/rl/...`) is answered with the folder that stage lives in."""
    parts = PurePosixPath(target).parts
    if len(parts) < 2 or parts[0] != "results" or parts[1] in SHARED_FOLDERS:
        return
    head, rest = parts[1], list(parts[2:])
    match = RUN_PATTERN.fullmatch(head)
    if match:
        run_experiment(cfg, *match.groups())
    elif head != "base":
        if head not in cfg.experiments:
            raise ConfigError(f"target {target}: undeclared experiment {head!r}; "
                              f"declared: {', '.join(cfg.experiments)}")
        if not rest:
            raise ConfigError(f"target {target}: stage folders are named by their training chain; {head}'s are "
                              + ", ".join(f"results/{stage_run(cfg, head, st)}" for st in cfg.experiments[head].stages))
        if rest[0] not in STAGE_NAMES:
            raise ConfigError(f"target {target}: unknown stage {rest[0]!r}; stages: {', '.join(STAGE_NAMES)}")
        if rest[0] not in cfg.experiments[head].stages:
            raise ConfigError(f"target {target}: experiment {head!r} does not run {rest[0]} "
                              f"(experiments.{head}.stages: {', '.join(cfg.experiments[head].stages)})")
        moved = PurePosixPath("results", stage_run(cfg, head, rest[0]), *rest[1:])
        raise ConfigError(f"target {target}: stage folders are named by their training chain; ask for {moved}")
    if len(rest) >= 2 and rest[0] == "eval" and rest[1] not in cfg.prompts():
        raise ConfigError(f"target {target}: no experiment uses prompt {rest[1]!r}; "
                          f"prompts: {', '.join(cfg.prompts())}")
    if len(rest) >= 3 and rest[0] == "eval" and rest[2] not in cfg.data.test_sets():
        raise ConfigError(f"target {target}: unknown test set {rest[2]!r}; test sets: "
                          f"{', '.join(cfg.data.test_sets())}")
