"""Rows on disk: JSONL read with the file and line named on any bad line, written atomically."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import DataError


def read_jsonl(path: str | Path, problems: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs. A bad line raises, or, given a `problems` list, is recorded there and skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: dataset file not found")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:  # binary or another encoding: name the place, never a traceback
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                f"{exc.start + 1})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                problem = None if isinstance(row, dict) else f"{path}:{lineno}: expected a JSON object"
            except json.JSONDecodeError as exc:
                problem = f"{path}:{lineno}: not valid JSON ({exc.msg})"
            if problem is None:
                yield lineno, row
            elif problems is None:
                raise DataError(problem)
            else:
                problems.append(problem)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write atomically: a crash never leaves a half-written dataset behind."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path)]
