"""`gsm-pipeline validate CONFIG.yaml [--schema OUT.json]`: check a config; regenerate the JSON schema."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from .config import PipelineConfig, validate_config
from .errors import ConfigError, run_main


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def schema_json() -> str:
    return json.dumps(PipelineConfig.model_json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate pipeline config files.")
    parser.add_argument("configs", nargs="*", help="YAML files, merged left to right as --configfile does")
    parser.add_argument("--schema", help="write the JSON schema of the config here")
    args = parser.parse_args(argv)
    merged: dict = {}
    for path in args.configs:
        try:
            merged = _merge(merged, load_yaml(path))
            cfg = validate_config(merged)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        print(f"{path}: ok ({len(cfg.experiments)} experiments)")
    if args.schema:
        Path(args.schema).write_text(schema_json())


def _merge(base: dict, update: dict) -> dict:
    """Snakemake's --configfile semantics: nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


if __name__ == "__main__":
    run_main(main)
