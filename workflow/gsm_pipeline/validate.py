"""`gsm-pipeline validate CONFIG.yaml [--schema OUT.json]`: check a config; regenerate the JSON schema."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import PipelineConfig, validate_config
from .config_files import load_config_file, merge
from .errors import ConfigError, run_main
from .layout import stage_table
from .preflight import describe, preflight


def schema_json() -> str:
    return json.dumps(PipelineConfig.model_json_schema(), indent=2) + "\n"


def merged_configs(paths: list[str], check: Callable[[PipelineConfig], Any] = lambda cfg: None):
    """Each file merged over those before it, left to right as --configfile does, validated and `check`ed:
    (path, config, what check returned). An error names the file whose merge brought it in."""
    merged: dict = {}
    for path in paths:
        merged = merge(merged, load_config_file(path))  # names the file itself
        try:
            cfg = validate_config(merged)
            checked = check(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        yield path, cfg, checked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate pipeline config files.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("configs", nargs="*", help="YAML files, merged left to right as --configfile does "
                                                   "(none: config.yaml)")
    parser.add_argument("--schema", help="write the JSON schema of the config here")
    args = parser.parse_args(argv)
    if not args.configs and not args.schema:
        args.configs = ["config.yaml"]
    for path, cfg, planned in merged_configs(args.configs, preflight):  # noqa: B007 (the last file's, after)
        print(f"{path}: ok ({len(cfg.experiments)} experiments)")
    if args.configs:
        print("stage folders (named by training chain; shared where identical):")
        print("\n".join(f"  {line}" for line in stage_table(cfg)))
        print("each stage as it will train (the merged config: what a preset states and what it inherits):")
        print("\n".join(f"  {line}" for line in describe(planned)))
    if args.schema:
        Path(args.schema).write_text(schema_json())


if __name__ == "__main__":
    run_main(main)
