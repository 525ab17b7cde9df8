"""Precision on the CPU: the pipeline's settings against TRL's defaults, natively and on an AVX2-only CPU, in one run.

    snakemake --cores all resources/model results/data/prep_sft.jsonl results/data/grpo.jsonl   # inputs, once
    python tests/bench/bench_precision.py [--out bench_precision.json]

Each cell is a fresh process (the CPU limit must be set before torch loads), timing the default config's
training jobs through the pipeline's own trainer builders: two prep-SFT optimizer steps (8 rows x <= 384 tokens
each) and one GRPO step (one group of 8 completions of up to 160 tokens), with model load, after a process start.
"pipeline" is what the config resolves to (mixed_precision auto; gradient checkpointing as config.yaml sets it,
which is on for every stage since 29b0ce2, so `pipeline_gc` now coincides with it; the tables in
tests/bench/README.md were measured with it off); "trl_defaults" leaves the numerics to TRL 1.16 (bf16 autocast
and gradient checkpointing on); `--variants pipeline_gc` forces gradient checkpointing on. "avx2" runs with
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2, which makes a CPU with native bf16 behave as one without.
Prints a markdown table (seconds, ratio to TRL's defaults) naming the CPU; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
STEPS = {"prep_sft": 2, "grpo": 1}


def worker(stage: str, variant: str, model: str, data: str) -> dict:
    """One cell, in this process: build the default job's trainer, train STEPS[stage] steps, report seconds."""
    import resource

    import torch
    import yaml

    from gsm_pipeline.config import validate_config
    from gsm_pipeline.training import stage as training

    cfg = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    job = cfg.grpo_job("tagged") if stage == "grpo" else cfg.sft_job("tagged", stage)
    job = job.model_copy(update={"training_args": {**job.training_args, "max_steps": STEPS[stage],
                                                   "save_strategy": "no"}})
    if variant == "pipeline_gc":  # the pipeline's precision with gradient checkpointing on: isolates its cost
        job = job.model_copy(update={"gradient_checkpointing": True})
    if variant == "trl_defaults":  # TRL's own numerics defaults apply; use_cpu because TRL refuses bf16 without it
        training.trainer_numerics = lambda job, precision: {"use_cpu": not torch.cuda.is_available()}
    module = __import__(f"gsm_pipeline.train_{'grpo' if stage == 'grpo' else 'sft'}", fromlist=["build_trainer"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        trainer, _ = module.build_trainer(job, model, data, Path(work))
        built = time.perf_counter()
        trainer.train()
    end = time.perf_counter()
    args = trainer.args
    return {"stage": stage, "variant": variant, "steps": STEPS[stage], "train_s": round(end - built, 1),
            "total_s": round(end - start, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing,
            "capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "resources/model"))
    parser.add_argument("--data-dir", default=str(REPO / "results/data"))
    parser.add_argument("--stages", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--cpus", nargs="+", default=["native", "avx2"], choices=["native", "avx2"])
    parser.add_argument("--variants", nargs="+", default=["pipeline", "trl_defaults"],
                        choices=["pipeline", "pipeline_gc", "trl_defaults"])
    parser.add_argument("--out", default="bench_precision.json")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        stage, variant = args.worker
        print(json.dumps(worker(stage, variant, args.model, f"{args.data_dir}/{stage}.jsonl")))
        return
    from gsm_pipeline.runtime import cpu_name

    results = []
    for cpu in args.cpus:
        env = {**os.environ, **(AVX2 if cpu == "avx2" else {})}
        for stage in args.stages:
            for variant in args.variants:
                out = subprocess.run([sys.executable, __file__, "--worker", stage, variant, "--model", args.model,
                                      "--data-dir", args.data_dir], env=env, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{cpu} {stage} {variant} failed:\n{out.stderr[-3000:]}")
                results.append({"cpu": cpu, **json.loads(out.stdout.strip().splitlines()[-1])})
                print(json.dumps(results[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "results": results}, indent=2))
    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} cores\n")
    print("| torch kernels (capability, native bf16) | job | pipeline (s) | TRL defaults (s) | TRL / pipeline |")
    print("| --- | --- | --- | --- | --- |")
    for cpu in args.cpus:
        for stage in args.stages:
            cell = {r["variant"]: r for r in results if r["cpu"] == cpu and r["stage"] == stage}
            if not {"pipeline", "trl_defaults"} <= set(cell):
                continue
            ours, trl = cell["pipeline"], cell["trl_defaults"]
            kernels = f"{cpu} ({ours['capability']}, {'yes' if ours['native_bf16'] else 'no'})"
            print(f"| {kernels} | {stage}, {ours['steps']} step(s) | {ours['total_s']} "
                  f"(bf16 {ours['bf16']}, GC {ours['gradient_checkpointing']}) | {trl['total_s']} "
                  f"(bf16 {trl['bf16']}, GC {trl['gradient_checkpointing']}) | "
                  f"{trl['total_s'] / ours['total_s']:.1f}x |")


if __name__ == "__main__":
    main()
