"""What may go under a stage's `training_args`: the names and value kinds of TRL's config fields, checked when
the config is validated (at `snakemake -n`), not when the stage starts hours later.

Importing TRL costs seconds, so the table is read from it once per installed TRL and transformers version and
cached as JSON (under $XDG_CACHE_HOME or ~/.cache); where TRL is not installed (Snakemake in its own
environment) the check is left to the job, which builds the real TRL config before any work.
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import hashlib
import json
import math
import types
import typing
from importlib import metadata
from typing import Any

from ..disk_cache import cache_path, write_cache
from ..errors import ConfigError
from ..stages import KINDS, STAGES, by_method
from .methods import RL_METHODS, config_path, load

# Arguments the pipeline sets itself, each with the config key that sets it ({stage} is filled in); an RL method's
# own arguments are added from its registry entry.
RESERVED_ARGS = {
    "output_dir": "the pipeline (results/<stage>-<chain>/checkpoints)", "seed": "seed or experiments.<row>.seed",
    "max_length": "stages.{stage}.max_length", "completion_only_loss": "experiments.<row>.completion_only_loss",
    "bf16": "model.mixed_precision", "fp16": "model.mixed_precision", "tf32": "model.tf32",
    "gradient_checkpointing": "stages.{stage}.gradient_checkpointing",
    "activation_checkpointing": "stages.{stage}.gradient_checkpointing",
    "use_liger_kernel": "stages.{stage}.liger_kernel", "torch_compile": "stages.{stage}.torch_compile",
    "use_cpu": "the pipeline (from the device the job runs on)",
}

# Ranges TRL and transformers accept silently (a negative learning rate trains backwards; zero rows per batch or
# negative epochs fail only when the stage starts).
RANGES: dict[str, tuple[typing.Callable[[float], bool], str]] = {
    "learning_rate": (lambda v: v > 0, "> 0"),
    "per_device_train_batch_size": (lambda v: v >= 1, ">= 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, ">= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, ">= 1"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "max_steps": (lambda v: v == -1 or v >= 1, ">= 1 (or -1: use num_train_epochs)"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0"),
    "adam_beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_epsilon": (lambda v: v > 0, "> 0"),
    "save_steps": (lambda v: v > 0, "> 0"),
    "steps_per_generation": (lambda v: v >= 1, ">= 1"),
    "generation_batch_size": (lambda v: v >= 1, ">= 1"),
    "logging_steps": (lambda v: v > 0, "> 0"),
    "save_total_limit": (lambda v: v >= 1, ">= 1"),
    "num_iterations": (lambda v: v >= 1, ">= 1"),
    "epsilon": (lambda v: v >= 0, ">= 0"),
}

Kind = str | list  # "int", "float", ... or a list of the allowed values


def _kinds(hint: Any) -> list[Kind]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out = [k for arg in typing.get_args(hint) for k in _kinds(arg)]
        if "str" in out and any(isinstance(k, list) for k in out):
            out.remove("str")  # `SchedulerType | str`: the string must name one of the enum's values
        return out
    if origin is typing.Literal:
        return [list(typing.get_args(hint))]
    if hint is type(None):
        return ["none"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [[m.value for m in hint]]
    if hint in (bool, int, float, str):
        return [hint.__name__]
    if origin in (list, tuple) or hint in (list, tuple):
        return ["list"]
    if origin is dict or hint is dict:
        return ["dict"]
    return ["any"]


def table_from(config_cls) -> dict[str, list[Kind]]:
    """Field name -> the kinds of value it takes, for one TRL config dataclass."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for field in dataclasses.fields(config_cls):
        kinds = _kinds(hints[field.name])
        choices = field.metadata.get("choices")
        if choices and "str" in kinds:
            kinds[kinds.index("str")] = list(choices)
        out[field.name] = kinds
    return out


def installed_versions() -> str | None:
    """The installed TRL and transformers versions, which every cached reading of TRL is keyed by."""
    try:
        return f"trl-{metadata.version('trl')}-transformers-{metadata.version('transformers')}"
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def installed_tables() -> dict[str, dict[str, list[Kind]]] | None:
    """{"trl.SFTConfig": table, "trl.GRPOConfig": table, ...}: every config class a stage can be built from, of the
    installed TRL (cached on disk), or None without TRL."""
    versions = installed_versions()
    if versions is None:
        return None
    paths = sorted({*(k.trl_config for k in KINDS.values() if k.trl_config), *(m.config for m in RL_METHODS.values())})
    names = hashlib.sha256(" ".join(paths).encode()).hexdigest()[:12]  # a new config class must not read an older cache
    path = cache_path(f"trainer_fields-{versions}-{names}.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    try:
        tables = {config: table_from(load(config)) for config in paths}
    except ImportError:  # Snakemake in an environment without TRL: the job checks when it starts
        return None
    write_cache(path, tables)
    return tables


def _fits(value: Any, kind: Kind) -> bool:
    if isinstance(kind, list):
        return any(type(value) is type(choice) and value == choice for choice in kind)
    if kind == "float":
        return type(value) in (int, float) and math.isfinite(value)
    return {"none": value is None, "bool": type(value) is bool, "int": type(value) is int,
            "str": isinstance(value, str), "list": isinstance(value, list), "dict": isinstance(value, dict),
            "any": True}[kind]


def _described(kinds: list[Kind]) -> str:
    names = {"none": "null", "float": "a finite number", "int": "an integer", "bool": "true or false",
             "str": "a string", "list": "a list", "dict": "a mapping"}
    return " or ".join(f"one of {', '.join(map(str, k))}" if isinstance(k, list) else names[k] for k in kinds)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def check_training_args(where: str, stage: str, args: dict[str, Any],
                        table: dict[str, list[Kind]] | None = None, rl: str = "grpo") -> None:
    """Refuse, in one line naming `<where>.training_args.<key>`, a key TRL does not have, one the pipeline sets
    itself, a value of the wrong kind or out of range. `table` defaults to the installed TRL's table of the
    stage's config (for the RL stage, that of the row's method `rl`)."""
    config = config_path(stage, rl)
    if table is None:
        tables = installed_tables()
        table = tables.get(config) if tables else None
    reserved, choices, generation = dict(RESERVED_ARGS), {}, {}
    # a kind's own stage keys that set TRL arguments (their TRAINER_ARGS) are set there, not here
    own = getattr(STAGES[stage].entry.section_model(), "TRAINER_ARGS", {})
    reserved.update({arg: f"stages.{{stage}}.{key}" for key, arg in own.items()})
    if by_method(stage):
        method = RL_METHODS[rl]
        choices, generation = method.choices, method.generation
        reserved.update({arg: f"stages.{{stage}}.{key}" for key, arg in method.stage_args.items()})
        reserved.update({arg: f"nothing: the RL method {rl} sets it" for arg in method.fixed})
        # the rollouts follow the one engine setting; TRL's deprecated name for paged generation goes the same way
        reserved.update({arg: "generation.engine" for arg in {*method.rollout_args(), "use_transformers_paged"}})
    for key, value in args.items():
        path = f"{where}.training_args.{key}"
        if key in reserved:
            raise ConfigError(f"key '{path}' is set by the pipeline: use {reserved[key].format(stage=stage)}")
        if table is None:
            continue
        if key not in table:
            close = difflib.get_close_matches(key, table, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown key '{path}' (not a {config} field{hint})")
        kinds = table[key]
        if not any(_fits(value, kind) for kind in kinds):
            hint = ""
            if isinstance(value, str) and _as_number(value) is not None and "float" in kinds:
                hint = f": YAML reads {value} as text, write it with a dot and a signed exponent (e.g. 1.0e-4)"
            raise ConfigError(f"key '{path}': expected {_described(kinds)} (got {value!r}){hint}")
        if key in RANGES and type(value) in (int, float):
            ok, bound = RANGES[key]
            if not ok(value):
                raise ConfigError(f"key '{path}': must be {bound} (got {value!r})")
        if key in choices and value not in choices[key]:
            raise ConfigError(f"key '{path}': expected one of {', '.join(map(str, choices[key]))} (got {value!r})")
        if key == "generation_kwargs" and isinstance(value, dict):
            taken = next((k for k in value if k in generation), None)
            if taken:
                raise ConfigError(f"key '{path}.{taken}' is set by the pipeline: use "
                                  f"{generation[taken].format(stage=stage)}")
