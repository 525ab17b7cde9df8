"""Tasks as plugins. A task is one module that loads its rows and names its test sets; it may also
bring its own instructions, worked examples (for few-shot prompts) and grader (see `defaults.py`).

Adding a task is one new file in this folder plus one line in TASKS; `data.source: <name>` selects it.
Modules are imported only when used, so the registry costs nothing at config-validation time.
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace

from . import defaults

TASKS = {
    "gsm_symbolic": "gsm_pipeline.tasks.gsm_symbolic",
    "gsm8k": "gsm_pipeline.tasks.gsm8k",
    "jsonl": "gsm_pipeline.tasks.jsonl",
    "reasoning_gym": "gsm_pipeline.tasks.reasoning_gym",
}
DEFAULT_TASK = "gsm_symbolic"
REQUIRED = ("test_sets", "load")
OPTIONAL = ("INSTRUCTIONS", "EXEMPLARS", "SOCRATIC", "grade", "input_files")


def get_task(name: str) -> SimpleNamespace:
    """The task's module, with `defaults` filling whatever it does not define."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; registered: {', '.join(TASKS)}")
    module = importlib.import_module(TASKS[name])
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise TypeError(f"task module {TASKS[name]} lacks {', '.join(missing)}")
    return SimpleNamespace(name=name, **{attr: getattr(module, attr, getattr(defaults, attr, None))
                                        for attr in REQUIRED + OPTIONAL})

