"""Stable short hashes of job settings: they stamp checkpoints and evaluation journals, and name runs."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def config_hash(job: dict[str, Any]) -> str:
    """Stable short hash of a job's settings (stamps checkpoints and reports)."""
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
