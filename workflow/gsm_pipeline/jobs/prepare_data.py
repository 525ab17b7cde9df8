"""Job: prepare the SFT, RL and test sets as JSONL, with a manifest of counts.

    python -m gsm_pipeline.jobs.prepare_data --config DATA_JOB_JSON --out results/data
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data import TRAINING_SPLITS, build_splits
from ..errors import run_main
from ..rows import write_jsonl
from ..settings.data import DataJob


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Prepare the SFT, RL and test sets as JSONL.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", required=True, help="data section as JSON")
    parser.add_argument("--out", required=True, help="output folder (results/data)")
    args = parser.parse_args(argv)
    cfg = DataJob.parse(args.config)
    socratic = cfg.socratic
    splits, skipped = build_splits(cfg, socratic)
    out = Path(args.out)
    for name in (*TRAINING_SPLITS, "fewshot"):
        write_jsonl(out / f"{name}.jsonl", splits[name])
    for name in cfg.test_sets():
        write_jsonl(out / "test" / f"{name}.jsonl", splits[name])
        if len(splits[name]) < cfg.test_size:
            print(f"warning: test set {name!r} has {len(splits[name])} rows, fewer than data.test_size="
                  f"{cfg.test_size}", file=sys.stderr)
    manifest = {"counts": {k: len(v) for k, v in splits.items()}, "skipped_no_final_number": skipped,
                "config": cfg.model_dump(exclude={"socratic"}), "socratic": socratic}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest["counts"]))


if __name__ == "__main__":
    run_main(main)
