"""Which source files a stage runs: the module and everything it imports from this package.

Rules list these as inputs, because Snakemake tracks a shell rule's command text but
not the Python behind it: editing rewards.py then replans GRPO and what follows it,
and nothing upstream.
"""
from __future__ import annotations

import ast
import hashlib
import os
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _file(module: str) -> Path | None:
    """'data' -> data.py, 'tasks' -> tasks/__init__.py, 'tasks.gsm8k' -> tasks/gsm8k.py (None if not ours)."""
    base = PACKAGE_DIR.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=None)
def _local_imports(module: str) -> frozenset[str]:
    path = _file(module)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    tree = ast.parse(path.read_text())
    # imports under `if TYPE_CHECKING:` name types for annotations only; the job never runs them
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and getattr(node.test, "id", "")
                   == "TYPE_CHECKING" for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = [*parent, node.module] if node.module else parent
                if node.module:
                    found.add(".".join(base))
                # `from .grading import harness` imports grading/harness.py: each name may be a module too
                found.update(".".join([*base, alias.name]) for alias in node.names)
            elif node.module and node.module.startswith("gsm_pipeline."):
                found.add(node.module.split(".", 1)[1])
                found.update(f"{node.module.split('.', 1)[1]}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".", 1)[1] for a in node.names if a.name.startswith("gsm_pipeline."))
    # a name that is not a module (`from .tasks import get_task`) is an attribute: only files are kept
    return frozenset(m for m in found if _file(m) is not None)


def _module_files(modules: tuple[str, ...]) -> list[Path]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_local_imports(module))
            parts = module.split(".")  # importing a.b runs a/__init__.py first
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(_file(m) for m in seen)


def module_sources(*modules: str) -> list[str]:
    """Paths of the given modules (dotted, relative to the package) and their transitive in-package imports,
    relative to the working directory (the checkout Snakemake runs in): moving the checkout with its results/
    changes no job's inputs."""
    return [os.path.relpath(path) for path in _module_files(modules)]


def code_stamp(*modules: str) -> str:
    """A hash of the same files' contents (named relative to the package): what a job stamps its resumable state
    with, so that state made by other code is never resumed."""
    digest = hashlib.sha256()
    for path in _module_files(modules):
        digest.update(f"{path.relative_to(PACKAGE_DIR)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
