"""How the experiment matrix maps onto result paths.

Two experiments whose stage would be trained identically (same job settings, same
parent chain, same data) share that stage: the first experiment declaring it owns
`results/<owner>/<stage>/`, and the others point at it. So adding a matrix row
that only changes GRPO reuses the SFT models already built.
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from .config import PARENT_STAGE, STAGES, PipelineConfig
from .errors import ConfigError

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


def stage_owner(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The first declared experiment that trains this exact stage (possibly `name` itself)."""
    chain = stage_chain(cfg, name, stage)
    for other, exp in cfg.experiments.items():
        if stage in exp.stages and stage_chain(cfg, other, stage) == chain:
            return other
    return name


def model_dir(cfg: PipelineConfig, name: str, stage: str) -> str:
    return BASE_MODEL if stage == "base" else f"results/{stage_owner(cfg, name, stage)}/{stage}/model"


def stage_run(cfg: PipelineConfig, name: str, stage: str) -> str:
    """The {run} wildcard evaluating an experiment's stage: base/<prompt> or <owner>/<stage>."""
    if stage == "base":
        return f"base/{cfg.experiment(name).prompt_key()}"
    return f"{stage_owner(cfg, name, stage)}/{stage}"


def trained_runs(cfg: PipelineConfig) -> list[str]:
    """Each distinct trained stage once (owners only), in declaration order."""
    runs = [stage_run(cfg, n, s) for n, exp in cfg.experiments.items() for s in exp.stages]
    return list(dict.fromkeys(runs))


def check_target(target: str, cfg: PipelineConfig) -> None:
    """A results/ path asked for on the command line must name declared experiments, stages, prompts and
    test sets; otherwise a one-line error replaces Snakemake's 'No rule to produce ...'."""
    parts = PurePosixPath(target).parts
    if len(parts) < 2 or parts[0] != "results" or parts[1] in SHARED_FOLDERS:
        return
    head, rest = parts[1], parts[2:]
    if head == "base":
        prompts = cfg.prompts()
        if rest and rest[0] not in prompts:
            raise ConfigError(f"target {target}: no experiment uses prompt {rest[0]!r}; "
                              f"base evaluations exist for: {', '.join(prompts)}")
    elif head not in cfg.experiments:
        raise ConfigError(f"target {target}: undeclared experiment {head!r}; declared: {', '.join(cfg.experiments)}")
    elif rest and rest[0] in STAGES and rest[0] not in cfg.experiments[head].stages:
        raise ConfigError(f"target {target}: experiment {head!r} does not run {rest[0]} "
                          f"(experiments.{head}.stages: {', '.join(cfg.experiments[head].stages)})")
    elif rest and rest[0] not in STAGES:
        raise ConfigError(f"target {target}: unknown stage {rest[0]!r}; stages: {', '.join(STAGES)}")
    if len(rest) >= 3 and rest[1] == "eval" and rest[2] not in cfg.data.test_sets():
        raise ConfigError(f"target {target}: unknown test set {rest[2]!r}; test sets: "
                          f"{', '.join(cfg.data.test_sets())}")
