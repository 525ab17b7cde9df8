"""The stage table: every training stage, defined once. Config validation (the stage sections, a row's stage
list, its overrides), the layout (folder names, parents), the data splits and the report read it; adding a stage
kind is one entry here, its job and its rule.

The RL stage keeps the name `grpo`, although a row may train it with another RL method (`rl: rloo`,
training/methods.py): the name is a config key (`stages.grpo`, `overrides.grpo`), a data split, a rule and the
prefix of every trained results/grpo-<chain> folder, so renaming it would move every RL model already trained and
break every config written so far. The report labels the stage by the method that trained it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Stage:
    name: str  # config key, rule and folder prefix
    kind: Literal["sft", "rl", "rft"]
    parent: str  # the stage it starts from ("base": the fetched model); the RL stage's is the row's grpo_from
    label: str  # the report's name for it (the RL stage's: its method's label)
    description: str
    split: str = ""  # the data split it trains on (results/data/<split>.jsonl, data.<split>_size); "": its name
    default: bool = True  # whether a row runs it unless its `stages` list says otherwise

    @property
    def data(self) -> str:
        return self.split or self.name


STAGES = {stage.name: stage for stage in (
    Stage("prep_sft", "sft", "base", "prep SFT", "Format-teaching SFT"),
    Stage("full_sft", "sft", "prep_sft", "full SFT", "SFT on the full set, from prep"),
    Stage("grpo", "rl", "prep_sft", "RL", "The RL stage (the row's rl: GRPO or RLOO), from prep (or full) SFT"),
    # Yuan et al. (arXiv 2308.01825): the classic baseline between SFT and RL; it trains on the RL stage's
    # questions, so the two are compared on the same problems
    Stage("rft", "rft", "prep_sft", "RFT", "Rejection-sampling fine-tuning, from prep SFT: SFT on the parent's own "
          "correct, distinct samples of the RL questions", split="grpo", default=False),
)}
STAGE_NAMES = tuple(STAGES)
DEFAULT_STAGES = [name for name, stage in STAGES.items() if stage.default]  # a row's `stages` unless it says
SPLITS = tuple(dict.fromkeys(stage.data for stage in STAGES.values()))  # the training data splits, carved disjoint
JOBS = {"sft": "train_sft", "rl": "train_grpo", "rft": "train_rft"}  # each kind's entry point, jobs/<job>.py
StageName = Literal[STAGE_NAMES]  # the config's choices
REPORT_ORDER = ("base", *STAGES)  # how tables and plots order a row's models
RL_STAGE = next(name for name, stage in STAGES.items() if stage.kind == "rl")


def is_rl(stage: str) -> bool:
    return stage in STAGES and STAGES[stage].kind == "rl"
