"""How the experiment matrix maps onto result paths.

Two experiments whose stage would be trained identically (same job settings, same
parent chain, same data) share that stage: the first experiment declaring it owns
`results/<owner>/<stage>/`, and the others point at it. So adding a matrix row
that only changes GRPO reuses the SFT models already built.

Every evaluation is (model run, prompt, test set) at `results/<run>/eval/<prompt>/<testset>/`, where
run is `base` or `<owner>/<stage>`: the base model is evaluated once per distinct prompt.
"""
from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from .config import PARENT_STAGE, STAGES, PipelineConfig
from .errors import ConfigError
from .prompts import prompt_key

BASE_MODEL = "resources/model"
# Top-level folders of results/ that are not experiments.
SHARED_FOLDERS = ("data", "confidence_targets", "report", "logs", "benchmarks")


def parent_stage(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The stage a stage starts from ("base" for prep_sft); GRPO's is per experiment."""
    return cfg.experiment(name).grpo_from if stage == "grpo" else PARENT_STAGE[stage]


def stage_chain(cfg: PipelineConfig, name: str, stage: str) -> list[dict[str, Any]]:
    """Everything that determines a stage's weights: its own job and, recursively, its parent's."""
    parent = parent_stage(cfg, name, stage)
    own = cfg.grpo_job(name) if stage == "grpo" else cfg.sft_job(name, stage)
    return [*([] if parent == "base" else stage_chain(cfg, name, parent)), own]


def owners(cfg: PipelineConfig) -> dict[tuple[str, str], str]:
    """(experiment, stage) -> the first declared experiment training that exact stage; one pass over the
    matrix, computed once per config (input functions ask for it per job)."""
    if cfg._owners is None:
        first: dict[str, str] = {}
        table = {}
        for name, exp in cfg.experiments.items():
            for stage in exp.stages:
                chain = json.dumps(stage_chain(cfg, name, stage), sort_keys=True)
                table[(name, stage)] = first.setdefault(chain, name)
        cfg._owners = table
    return cfg._owners


def stage_owner(cfg: PipelineConfig, name: str, stage: str) -> str:
    cfg.experiment(name)  # names an undeclared experiment in one line
    return owners(cfg).get((name, stage), name)


def model_dir(cfg: PipelineConfig, name: str, stage: str) -> str:
    return BASE_MODEL if stage == "base" else f"results/{stage_owner(cfg, name, stage)}/{stage}/model"


def stage_run(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The model an experiment's stage is: `base` or `<owner>/<stage>`."""
    return "base" if stage == "base" else f"{stage_owner(cfg, name, stage)}/{stage}"


def eval_dir(run: str, prompt: str, testset: str) -> str:
    return f"results/{run}/eval/{prompt}/{testset}"


def experiment_evaluations(cfg: PipelineConfig, name: str) -> list[dict[str, str]]:
    """Each (stage, eval prompt) of one experiment, base included, with the runs it is compared against."""
    exp = cfg.experiment(name)
    out = []
    for stage in ["base", *exp.stages]:
        parent = "base" if stage == "base" else parent_stage(cfg, name, stage)
        for spec in exp.eval_specs(cfg.data.source):
            out.append({"stage": stage, "run": stage_run(cfg, name, stage), "prompt": prompt_key(spec),
                        "parent_run": stage_run(cfg, name, parent)})
    return out


def evaluations(cfg: PipelineConfig) -> list[tuple[str, str]]:
    """Every distinct (run, prompt) evaluated, in declaration order."""
    pairs = [(e["run"], e["prompt"]) for n in cfg.experiments for e in experiment_evaluations(cfg, n)]
    return list(dict.fromkeys(pairs))


def trained_runs(cfg: PipelineConfig) -> list[str]:
    """Each distinct trained stage once (owners only), in declaration order."""
    return list(dict.fromkeys(f"{owner}/{stage}" for (_, stage), owner in owners(cfg).items()))


def check_target(target: str, cfg: PipelineConfig) -> None:
    """A results/ path asked for on the command line must name declared experiments, stages, prompts and
    test sets; otherwise a one-line error replaces Snakemake's 'No rule to produce ...'."""
    parts = PurePosixPath(target).parts
    if len(parts) < 2 or parts[0] != "results" or parts[1] in SHARED_FOLDERS:
        return
    head, rest = parts[1], list(parts[2:])
    if head != "base":
        if head not in cfg.experiments:
            raise ConfigError(f"target {target}: undeclared experiment {head!r}; "
                              f"declared: {', '.join(cfg.experiments)}")
        if rest and rest[0] not in STAGES:
            raise ConfigError(f"target {target}: unknown stage {rest[0]!r}; stages: {', '.join(STAGES)}")
        if rest and rest[0] not in cfg.experiments[head].stages:
            raise ConfigError(f"target {target}: experiment {head!r} does not run {rest[0]} "
                              f"(experiments.{head}.stages: {', '.join(cfg.experiments[head].stages)})")
        rest = rest[1:]
    if len(rest) >= 2 and rest[0] == "eval" and rest[1] not in cfg.prompts():
        raise ConfigError(f"target {target}: no experiment uses prompt {rest[1]!r}; "
                          f"prompts: {', '.join(cfg.prompts())}")
    if len(rest) >= 3 and rest[0] == "eval" and rest[2] not in cfg.data.test_sets():
        raise ConfigError(f"target {target}: unknown test set {rest[2]!r}; test sets: "
                          f"{', '.join(cfg.data.test_sets())}")
