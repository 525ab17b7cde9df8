"""Which source files a stage runs: the module and everything it imports from this package.

Rules list these as inputs, because Snakemake tracks a shell rule's command text but
not the Python behind it: editing rewards.py then replans GRPO and what follows it,
and nothing upstream.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _local_imports(module: str) -> frozenset[str]:
    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("gsm_pipeline."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gsm_pipeline."))
    return frozenset(m for m in found if (PACKAGE_DIR / f"{m}.py").is_file())


def module_sources(*modules: str) -> list[str]:
    """Absolute paths of the given modules and their transitive in-package imports."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_local_imports(module))
    return sorted(str(PACKAGE_DIR / f"{m}.py") for m in seen)
