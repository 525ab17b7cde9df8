"""Reading config files strictly: one line naming the file (and line) for a missing, binary, malformed or
non-mapping file, and a key given twice is refused instead of the last one silently winning (PyYAML's and
Snakemake's behaviour)."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice, naming the key and both lines."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"line {line}: key {key!r} given twice (first on line {seen[key]})")
            try:
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML's own check below names it
                pass
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: str | Path) -> dict:
    """The mapping a YAML (or JSON) config file holds; ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" if not path.exists() else f"{path}: not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got a {type(data).__name__}")
    return data


def merge(base: dict, update: dict) -> dict:
    """Snakemake's --configfile semantics: nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
