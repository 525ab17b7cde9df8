"""The RL-method registry: each method the RL stage can train with, defined once. The config's `rl` choices, the
training_args field check, the job (which trainer and config it builds, and how the stage's keys reach them), the
dry-run, the report's labels and the log keys its tables, plots and compute axis read all come from one entry.

Classes are named by dotted path and imported only where a job or the dry-run builds them, so a method under
`trl.experimental` is one entry too, and Snakemake never imports TRL to read this table.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..stages import STAGES

# The RL stage's own keys (stages.rl.<key>) and the trainer-config arguments they set, for TRL's group-sampling
# methods (GRPO, RLOO): the same names on both sides.
GROUP_ARGS = {"num_generations": "num_generations", "max_completion_length": "max_completion_length",
              "temperature": "temperature", "beta": "beta"}
# The rollout engine (generation.engine, resolved on the machine that runs the job) -> the switch TRL's
# group-sampling trainers read. TRL cannot call our loop: `loop` rolls out with TRL's own `model.generate`.
GROUP_ROLLOUTS = {"loop": {"use_transformers_continuous_batching": False},
                  "continuous": {"use_transformers_continuous_batching": True}}
# The rollout's generation settings TRL's group-sampling trainers take from their own fields, which their
# `generation_kwargs` would silently override: generation_kwargs key -> where the pipeline sets it.
GROUP_GENERATION = {"max_new_tokens": "stages.{stage}.max_completion_length",
                    "temperature": "stages.{stage}.temperature",
                    **{k: f"stages.{{stage}}.training_args.{k}" for k in ("top_p", "top_k", "min_p",
                                                                        "repetition_penalty", "cache_implementation")},
                    "do_sample": "nothing: RL rollouts always sample", "num_return_sequences":
                    "stages.{stage}.num_generations"}
# Values TRL's config takes as any string and its trainer refuses only at the first loss (GRPOTrainer's loss
# formulations, as the installed TRL computes them: tests/test_refusals.py reads them from its source).
GRPO_CHOICES = {"loss_type": ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo"),
                "scale_rewards": ("group", "batch", "none", True, False)}
# What the report reads from a method's log history -> the key TRL's group-sampling trainers log it under. The
# share of flat groups and its split are logged by our rewards through TRL's log_metric, under one definition of
# flat (grading/rewards.group_split); TRL's own frac_reward_zero_std stays in the history, not on the page.
GROUP_LOGS = {"reward": "reward", "reward_std_zero": "groups/zero_std", "completion_length":
              "completions/mean_length", "kl": "kl", "reward_parts": "rewards/", "entropy": "entropy",
              "clip_ratio": "clip_ratio/region_mean", "zero_std_all_correct": "groups/zero_std_all_correct",
              "zero_std_all_wrong": "groups/zero_std_all_wrong", "correct_strict": "completions/correct_strict"}


@dataclass(frozen=True, eq=False)  # compared and hashed as the one registry entry it is
class RLMethod:
    name: str  # the config value (experiments.<row>.rl)
    label: str  # how the report names the RL stage it trained
    config: str  # dotted path of its TRL config class
    trainer: str  # dotted path of its trainer class
    stage_args: dict[str, str] = field(default_factory=lambda: dict(GROUP_ARGS))  # stage key -> config argument
    fixed: dict[str, object] = field(default_factory=dict)  # config arguments the method always sets
    logs: dict[str, str] = field(default_factory=lambda: dict(GROUP_LOGS))  # report quantity -> logged key
    rollouts: dict[str, dict[str, object]] = field(default_factory=lambda: dict(GROUP_ROLLOUTS))  # engine -> args
    generation: dict[str, str] = field(default_factory=lambda: dict(GROUP_GENERATION))  # set elsewhere, not there
    choices: dict[str, tuple] = field(default_factory=dict)  # config argument -> the values its trainer computes

    def config_name(self) -> str:
        return self.config.rsplit(".", 1)[1]

    def kwargs(self, stage_values: dict[str, object]) -> dict[str, object]:
        """The trainer-config arguments the stage's own keys and the method set (reserved under training_args)."""
        return {**{arg: stage_values[key] for key, arg in self.stage_args.items()}, **self.fixed}

    def rollout_args(self) -> set[str]:
        """The config arguments the rollout engine sets (reserved under training_args: generation.engine)."""
        return {arg for args in self.rollouts.values() for arg in args}

    def log_key(self, quantity: str) -> str | None:
        return self.logs.get(quantity)


RL_METHODS: dict[str, RLMethod] = {method.name: method for method in (
    RLMethod("grpo", "GRPO", "trl.GRPOConfig", "trl.GRPOTrainer", choices=GRPO_CHOICES),
    RLMethod("rloo", "RLOO", "trl.RLOOConfig", "trl.RLOOTrainer"),
)}  # TRL 1.16 has no PPOTrainer, in trl or trl.experimental


def load(path: str):
    """A class by dotted path (`trl.GRPOConfig`, `trl.experimental.online_dpo.OnlineDPOConfig`)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def config_path(stage: str, rl: str) -> str:
    """The TRL config class a stage is built from: its kind's (stages.py), or its row's RL method's."""
    return STAGES[stage].entry.trl_config or RL_METHODS[rl].config
