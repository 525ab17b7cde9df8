"""Sweeps: an experiment row with `sweep: {key: [values], ...}` becomes one row per combination.

Keys are dotted paths into the row (`seed`, `finetune`, `lora.r`, `overrides.rl.training_args.learning_rate`).
Each new row is named `<row>-<leaf><value>...` (e.g. `sft-seed1-learning_rate1e-05`) and records the
row it came from (`variant_of`) and its swept values (`swept`), which the report turns into columns.
"""
from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from .errors import ConfigError


def _set(row: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        row = row.setdefault(key, {})
        if not isinstance(row, dict):
            raise ConfigError(f"sweep key {dotted!r}: {key!r} is not a section")
    row[leaf] = value


def _label(dotted: str, value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return dotted.rsplit(".", 1)[-1] + re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def expand_sweeps(experiments: dict[str, Any]) -> dict[str, Any]:
    """Raw experiments section -> the same with every swept row replaced by its combinations, in order."""
    out: dict[str, Any] = {}
    for name, row in (experiments or {}).items():
        sweep = (row or {}).get("sweep") if isinstance(row, dict) else None
        if not sweep:
            out[name] = row
            continue
        if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
            raise ConfigError(f"key 'experiments.{name}.sweep': must map keys to non-empty lists of values")
        keys = list(sweep)
        for values in itertools.product(*(sweep[k] for k in keys)):
            new = copy.deepcopy({k: v for k, v in row.items() if k != "sweep"})
            for key, value in zip(keys, values):
                try:
                    _set(new, key, value)
                except ConfigError as exc:
                    raise ConfigError(f"key 'experiments.{name}.sweep': {exc}") from None
            new["variant_of"] = name
            new["swept"] = dict(zip(keys, values))
            label = f"{name}-" + "-".join(_label(k, v) for k, v in zip(keys, values))
            if label in out or label in experiments:
                raise ConfigError(f"key 'experiments.{name}.sweep': row name {label!r} is taken twice")
            out[label] = new
    return out
