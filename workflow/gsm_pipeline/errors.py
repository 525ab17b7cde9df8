"""Errors a user can act on, and the wrapper that prints them as one line.

Deep library tracebacks are what users of plain TRL scripts complain about; every
problem we can name (file, key, row) is raised as a PipelineError and printed as
one line on stderr with exit status 1.
"""
from __future__ import annotations

import sys
from typing import Callable


class PipelineError(Exception):
    """A problem the user can fix, phrased as one line naming the file, key or row."""


class ConfigError(PipelineError, ValueError):
    """A configuration problem."""


class DataError(PipelineError, ValueError):
    """A dataset problem."""


class ModelError(PipelineError):
    """A model path, download or save problem."""


class TrainingError(PipelineError):
    """Training cannot go on (e.g. a non-finite loss)."""


LOW_DISK_BYTES = 256 * 2**20


def run_main(main: Callable[[], None]) -> None:
    try:
        main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        # torch reports a full disk mid-checkpoint as a cryptic RuntimeError ("unexpected pos ..."): say what it
        # is (the incomplete checkpoint is skipped when the job is rerun)
        import shutil

        free = shutil.disk_usage(".").free
        if free >= LOW_DISK_BYTES:
            raise
        print(f"error: no space left on device ({free // 2**20} MB free here) while running: "
              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        sys.exit(1)
