"""Answers that cost an import of seconds (TRL's config checks, reasoning-gym's registry) kept on disk between
dry-runs, keyed by the installed versions they depend on. A missing or unwritable cache only costs the import."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

_READ: dict[Path, dict[str, Any]] = {}  # each cache file read once per process


def cache_path(name: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gsm_pipeline" / name


def cached(kind: str, version: str | None, checker: str, key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`'s answer for `key`, computed once and kept on disk per installed `version` of what it asks and
    per text of the `checker` module (a changed check never reads what an older one cached)."""
    own = hashlib.sha256(Path(checker).read_bytes()).hexdigest()[:12]
    path = cache_path(f"{kind}-{version}-{own}.json")
    if path not in _READ:
        _READ[path] = read_cache(path)
    answers = _READ[path]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    if digest not in answers:
        answers[digest] = compute()
        write_cache(path, answers)
    return answers[digest]


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
