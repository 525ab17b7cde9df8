"""Answers that cost an import of seconds (TRL's config checks, reasoning-gym's registry) kept on disk between
dry-runs, keyed by the installed versions they depend on. A missing or unwritable cache only costs the import."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def cache_path(name: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gsm_pipeline" / name


def read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_cache(path: Path, data: Any) -> None:
    """Atomically (a concurrent dry-run reads the old file or the new one); a read-only home only costs the import
    next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass
