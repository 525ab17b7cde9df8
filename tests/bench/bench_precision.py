"""Precision on the CPU: the pipeline's settings against TRL's defaults on each kind of CPU, in one run.

    snakemake --cores all resources/model results/data/prep_sft.jsonl results/data/rl.jsonl   # inputs, once
    python tests/bench/bench_precision.py [--out bench_precision.json]

Each cell is a fresh process (the CPU limit must be set before torch loads), timing the default config's
training jobs through the pipeline's own trainer builders: two prep-SFT optimizer steps (8 rows x <= 384 tokens
each) and one GRPO step (one group of 8 completions of up to 160 tokens), with model load, after a process start.
"pipeline" is what the config resolves to (mixed_precision auto; gradient checkpointing as config.yaml sets it,
which is on for every stage since 29b0ce2, so `pipeline_gc` now coincides with it; the tables in
tests/bench/README.md were measured with it off); "trl_defaults" leaves the numerics to TRL 1.16 (bf16 autocast
and gradient checkpointing on); `--variants pipeline_gc` forces gradient checkpointing on. Each cell also times
one Linear(576, 1536) on 256 rows in one thread, fp32 against bf16 autocast (SmolLM2's MLP width).

CPU kinds, reproduced on a CPU with AVX-512 BF16 by limiting torch: "native"; "avx512-no-bf16"
(ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI: AVX-512 kernels without bf16 instructions, as on Skylake-SP, Cascade Lake
and Ice Lake-SP Xeons, where oneDNN emulates bf16); "avx2" (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2, as on
CPUs without AVX-512). Prints a markdown table (seconds, ratio to TRL's defaults, and how `auto` decided) naming
the CPU; nothing here asserts a time.
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
CPU_LIMITS = {"native": {}, "avx512-no-bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"},
              "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
STEPS = {"prep_sft": 2, "rl": 1}


def matmul_ms() -> dict:
    """One Linear(576, 1536) on 256 rows, one thread: fp32 against bf16 autocast, mean of 20 after 3 warm-ups."""
    import contextlib

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    layer, x = torch.nn.Linear(576, 1536), torch.randn(256, 576)
    out = {}
    for name, context in (("fp32", contextlib.nullcontext), ("bf16", lambda: torch.autocast("cpu", torch.bfloat16))):
        for _ in range(3):
            with context():
                layer(x)
        start = time.perf_counter()
        for _ in range(20):
            with context():
                layer(x)
        out[f"linear_{name}_ms"] = round((time.perf_counter() - start) / 20 * 1000, 2)
    torch.set_num_threads(threads)
    return out


def worker(stage: str, variant: str, model: str, data: str) -> dict:
    """One cell, in this process: build the default job's trainer, train STEPS[stage] steps, report seconds."""
    import resource

    import torch
    import yaml

    from gsm_pipeline import runtime
    from gsm_pipeline.config import validate_config
    from gsm_pipeline.training import stage as training

    cfg = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    job = cfg.stage_job("tagged", stage)
    job = job.model_copy(update={"training_args": {**job.training_args, "max_steps": STEPS[stage],
                                                   "save_strategy": "no"}})
    if variant == "pipeline_gc":  # the pipeline's precision with gradient checkpointing on: isolates its cost
        job = job.model_copy(update={"gradient_checkpointing": True})
    if variant == "trl_defaults":  # TRL's own numerics defaults apply; use_cpu because TRL refuses bf16 without it
        training.trainer_numerics = lambda job, precision: {"use_cpu": not torch.cuda.is_available()}
    module = __import__(f"gsm_pipeline.jobs.train_{'rl' if stage == 'rl' else 'sft'}", fromlist=["build_trainer"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        trainer, _ = module.build_trainer(job, model, data, Path(work))
        built = time.perf_counter()
        trainer.train()
    end = time.perf_counter()
    args = trainer.args
    native, why = runtime.cpu_bf16()
    return {"stage": stage, "variant": variant, "steps": STEPS[stage], "train_s": round(end - built, 1),
            "total_s": round(end - start, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing,
            "capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_says_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "native_bf16": native, "auto_because": why, **matmul_ms()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "resources/model"))
    parser.add_argument("--data-dir", default=str(REPO / "results/data"))
    parser.add_argument("--stages", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--cpus", nargs="+", default=list(CPU_LIMITS), choices=list(CPU_LIMITS))
    parser.add_argument("--variants", nargs="+", default=["pipeline", "trl_defaults"],
                        choices=["pipeline", "pipeline_gc", "trl_defaults"])
    parser.add_argument("--out", default="results/bench/bench_precision.json")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        stage, variant = args.worker
        print(json.dumps(worker(stage, variant, args.model, f"{args.data_dir}/{stage}.jsonl")))
        return
    from gsm_pipeline.runtime import cpu_name

    results = []
    for cpu in args.cpus:
        env = {**os.environ, **CPU_LIMITS[cpu]}
        for stage in args.stages:
            for variant in args.variants:
                out = subprocess.run([sys.executable, __file__, "--worker", stage, variant, "--model", args.model,
                                      "--data-dir", args.data_dir], env=env, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{cpu} {stage} {variant} failed:\n{out.stderr[-3000:]}")
                results.append({"cpu": cpu, **json.loads(out.stdout.strip().splitlines()[-1])})
                print(json.dumps(results[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "results": results}, indent=2))
    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} cores\n")
    print("| CPU kind (capability; auto's bf16 and why) | job | pipeline (s) | TRL defaults (s) | TRL / pipeline "
          "| Linear fp32 / bf16 (ms) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cpu in args.cpus:
        for stage in args.stages:
            cell = {r["variant"]: r for r in results if r["cpu"] == cpu and r["stage"] == stage}
            if not {"pipeline", "trl_defaults"} <= set(cell):
                continue
            ours, trl = cell["pipeline"], cell["trl_defaults"]
            kernels = (f"{cpu} ({ours['capability']}; {'yes' if ours['native_bf16'] else 'no'}: "
                       f"{ours['auto_because']})")
            print(f"| {kernels} | {stage}, {ours['steps']} step(s) | {ours['total_s']} "
                  f"(bf16 {ours['bf16']}, GC {ours['gradient_checkpointing']}) | {trl['total_s']} "
                  f"(bf16 {trl['bf16']}, GC {trl['gradient_checkpointing']}) | "
                  f"{trl['total_s'] / ours['total_s']:.1f}x | {ours['linear_fp32_ms']} / {ours['linear_bf16_ms']} |")


if __name__ == "__main__":
    main()
