"""The strict model every setting derives from, and the numerics every job that loads a model reads."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SEED_MAX = 2**32 - 1  # torch.manual_seed and numpy refuse larger seeds


def registered(registry: Mapping[str, Any], what: str) -> AfterValidator:
    """A field whose value must be a key of `registry` (read when validating, so late entries count)."""
    def check(value: str) -> str:
        if value not in registry:
            raise ValueError(f"unknown {what} {value!r}; registered: {', '.join(registry)}")
        return value
    return AfterValidator(check)


def is_name(text: str) -> bool:
    """A name that becomes a path segment and a wildcard value; the whole text must match (re.match with `$`
    would let a trailing newline through, and it would split the generated shell commands)."""
    return isinstance(text, str) and re.fullmatch(NAME_PATTERN.strip("^$"), text) is not None


class Strict(BaseModel):
    """Unknown keys fail; no silent conversions (`true` is not the integer 1, "5" is not 5); no inf or NaN."""
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True, allow_inf_nan=False)


class JobSettings(Strict):
    """A job's settings: built from the config by the workflow, passed as `--config JSON`, parsed back here."""

    @classmethod
    def parse(cls, text: str) -> "JobSettings":
        """The settings from `--config`; a missing, unknown or mistyped key is one line naming it."""
        try:
            return cls.model_validate(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config: not JSON ({exc})") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "<top level>"
            raise ConfigError(f"--config: {cls.__name__} key '{where}': {err['msg']}") from None

    @classmethod
    def from_flags(cls, flags: dict[str, str], **values: Any) -> "JobSettings":
        """Settings a command builds from its flags (`flags`: field -> flag); a value the settings refuse is one
        line naming its flag, as the config names its key."""
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            raise ConfigError(f"{flags.get(field, field)}: {plain(err)} (got {err.get('input')!r})") from None

    def as_json(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True)

    def stamp(self) -> dict[str, Any]:
        """The settings as a plain dict: what checkpoints and journals are stamped with."""
        return self.model_dump()


BOUNDS = {"greater_than_equal": ("ge", "at least"), "less_than_equal": ("le", "at most"), "greater_than": ("gt", ">"),
          "less_than": ("lt", "<")}


def plain(err: dict[str, Any]) -> str:
    """A validation error's message as a command line says it ('must be at least 1')."""
    if err["type"] in BOUNDS:
        bound, words = BOUNDS[err["type"]]
        return f"must be {words} {err['ctx'][bound]}"
    return err["msg"].removeprefix("Value error, ")


class Numerics(Strict):
    """Weights dtype and mixed precision, the same for every job (resolved on the machine that runs it)."""
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype for every stage")
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = Field(
        "auto", description="Autocast of every job (training, confidence targets, evaluation): auto = bf16 on GPUs "
                            "with bf16 and CPUs with native bf16, else none; bf16 on a CPU without it is emulated")
    tf32: bool = Field(False, description="TF32 matmuls on Ampere or newer GPUs (ignored elsewhere)")
