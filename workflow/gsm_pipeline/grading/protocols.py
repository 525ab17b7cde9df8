"""lm-evaluation-harness protocols: lm-eval's task settings, read from the installed lm-eval package, as a registry.
Adding a protocol is one PROTOCOLS entry: the task's YAML (a file of lm_eval/tasks) and the answer format whose
strict reader asks for the same answer (this project's own graders run beside lm-eval's). Prompt specs and stop
strings read this; rendering and grading through lm-eval's code are `harness.py`'s, which only evaluation imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from typing import Any


@dataclass(frozen=True)
class Protocol:
    task_file: str       # under lm_eval/tasks/
    answer_format: str   # formats.FORMATS entry of this project's strict grader for the same prompt


PROTOCOLS: dict[str, Protocol] = {
    "lm-eval-gsm8k": Protocol(task_file="gsm8k/gsm8k.yaml", answer_format="gsm8k"),
}
GRADED_BY = "lm-eval-gsm8k"  # whose graders a prediction carries when it was asked in this project's own prompt
FILTERS = {"strict-match": "lmeval_strict", "flexible-extract": "lmeval_flexible"}  # lm-eval's name -> ours


def version() -> str | None:
    """lm-eval's installed version, None without it (it is the optional extra `lm-eval`)."""
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return None


def graders_on(asked: bool | str) -> bool:
    """Whether an evaluation also grades lm-eval's way: `auto` where lm-eval is installed."""
    return version() is not None if asked == "auto" else bool(asked)


@lru_cache(maxsize=None)
def task_config(protocol: str) -> dict[str, Any]:
    """The task's settings as the installed lm-eval ships them; a clear error when lm-eval or the file is missing."""
    import yaml

    try:
        path = resources.files("lm_eval") / "tasks" / PROTOCOLS[protocol].task_file
        return yaml.safe_load(path.read_text())
    except ModuleNotFoundError:
        raise ValueError(f"{protocol}: lm-eval is not installed (pip install 'gsm-pipeline[lm-eval]', or "
                         "pip install lm-eval)") from None
    except FileNotFoundError:
        raise ValueError(f"{protocol}: lm-eval {version()} has no lm_eval/tasks/{PROTOCOLS[protocol].task_file}") \
            from None


def stop_strings(protocol: str) -> list[str]:
    """The task's stop sequences (generation_kwargs.until)."""
    return list(task_config(protocol)["generation_kwargs"]["until"])
