"""The stage table: every kind of training stage and every stage, each defined once. Config validation (the stage
sections, a row's stage list, its overrides, the job each stage runs), the workflow's training rules (one per stage,
generated from this table), the preflight, the compute axis and the report read it. Adding a stage kind is one
`Kind` entry here, its settings (a stage section and a typed job) and its job module; adding a stage of a kind is one
`Stage` entry.

This module imports nothing of the package: the settings and job named by a kind are looked up by name when used,
so a job that reads the table does not import every other kind's code (nor replan when it changes).

The RL stage is named by its role, `rl`, whichever method trains it (the row's `rl:`, training/methods.py); the
report labels it by that method.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Kind:
    """A kind of training stage: the settings that configure it, the job that runs it, how the report shows it."""
    section: str  # its `stages.<stage>` section: a settings class, "<module under gsm_pipeline.settings>:<class>"
    job: str  # the typed job its entry point parses (the section, the row's and the pipeline's settings it reads)
    module: str  # its entry point, gsm_pipeline/jobs/<module>.py
    label: str  # the report's name for the kind (plots' legends)
    colour: str  # its points' colour where plots tell kinds apart
    trl_config: str | None  # the TRL config its training_args are checked against; None: the row's RL method's
    description: str = ""
    completion_length: str = ""  # the log key of its mean sampled completion length, where it samples as it trains

    def section_model(self):
        return _load(self.section)

    def job_model(self):
        return _load(self.job)


def _load(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(f"gsm_pipeline.settings.{module}"), name)


KINDS = {
    "sft": Kind("training:SFTStageConfig", "training:SFTJob", "train_sft", "SFT", "tab:blue", "trl.SFTConfig",
                "Supervised fine-tuning on reference solutions (TRL's SFTTrainer)"),
    "rl": Kind("training:RLStageConfig", "training:RLJob", "train_rl", "RL", "tab:red", None,
               "RL from the row's rewards, by the row's method (training/methods.py: GRPO or RLOO)"),
    # Yuan et al. (arXiv 2308.01825): the classic baseline between SFT and RL
    "rft": Kind("training:RFTStageConfig", "training:RFTJob", "train_rft", "RFT", "tab:green", "trl.SFTConfig",
                "Rejection-sampling fine-tuning: SFT on the parent's own correct, distinct samples"),
    # Agarwal et al. (arXiv 2306.13649): dense like SFT, on-policy like RL; TRL's DistillationTrainer
    "distill": Kind("distillation:DistillStageConfig", "distillation:DistillJob", "train_distill",
                    "on-policy distillation", "tab:purple", "trl.DistillationConfig",
                    "On-policy distillation: the student's own samples, scored token by token by a teacher",
                    completion_length="completions/mean_length"),
}


@dataclass(frozen=True)
class Stage:
    name: str  # config key, rule and folder prefix
    kind: str  # a key of KINDS
    parent: str  # the stage it starts from ("base": the fetched model); the RL stage's is the row's rl_from
    label: str  # the report's name for it (the RL stage's: its method's label)
    description: str
    marker: str  # its points' marker in the report's plots (the base model's is "o")
    split: str = ""  # the data split it trains on (results/data/<split>.jsonl, data.<split>_size); "": its name
    default: bool = True  # whether a row runs it unless its `stages` list says otherwise

    @property
    def data(self) -> str:
        return self.split or self.name

    @property
    def entry(self) -> Kind:
        return KINDS[self.kind]


STAGES = {stage.name: stage for stage in (
    Stage("prep_sft", "sft", "base", "prep SFT", "Format-teaching SFT", "s"),
    Stage("full_sft", "sft", "prep_sft", "full SFT", "SFT on the full set, from prep", "D"),
    Stage("rl", "rl", "prep_sft", "RL", "The RL stage (the row's rl: GRPO or RLOO), from prep (or full) SFT", "^"),
    # trained on the RL stage's questions, so the two are compared on the same problems
    Stage("rft", "rft", "prep_sft", "RFT", "Rejection-sampling fine-tuning, from prep SFT: SFT on the parent's own "
          "correct, distinct samples of the RL questions", "v", split="rl", default=False),
    Stage("distill", "distill", "prep_sft", "distillation", "On-policy distillation, from prep SFT: the student "
          "samples the RL questions and learns its teacher's next-token distribution on its own completions", "P",
          split="rl", default=False),
)}
STAGE_NAMES = tuple(STAGES)
DEFAULT_STAGES = [name for name, stage in STAGES.items() if stage.default]  # a row's `stages` unless it says
StageName = Literal[STAGE_NAMES]  # the config's choices
REPORT_ORDER = ("base", *STAGES)  # how tables and plots order a row's models
MARKERS = {"base": "o", **{name: stage.marker for name, stage in STAGES.items()}}
RL_STAGE = next(name for name, stage in STAGES.items() if stage.entry.trl_config is None)


def by_method(stage: str) -> bool:
    """Whether a stage is trained, and named in the report, by its row's RL method (`rl:`)."""
    return stage in STAGES and STAGES[stage].entry.trl_config is None
