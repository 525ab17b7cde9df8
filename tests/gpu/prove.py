"""The GPU proof: the real tiny-model DAG with each launcher, the saved models checked, and the benchmarks.

    python tests/gpu/prove.py --out OUT [--carry .gpu_carry] [--cpu] [--skip dag|bench ...]

Run through tests/gpu/prove.sh, which first installs the carried wheels. On a GPU: bf16, every stage with
`gpus: 1` under the `single`, `zero2` and `zero3` launchers (ZeRO on one process), its evaluations through the
GPU's `auto` engine (continuous batching), then the two benchmarks at their fixed workloads against plain TRL
(GSM8K rows and SmolLM2's tokenizer from the carry folder; the generation benchmark runs every engine on CUDA).
With --cpu (the slow suite): the same DAG in fp32 on the CPU (DeepSpeed through its CPU accelerator) and the
benchmarks' smoke sizes. Writes OUT/prove.json and prints a one-screen summary; exits 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import Dag, arithmetic_rows, tiny_config, write_jsonl  # noqa: E402

LAUNCHERS = ("single", "zero2", "zero3")
STAGES = ("prep_sft", "full_sft", "grpo")


def environment() -> dict:
    import importlib.metadata

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported()}
    for name in ("transformers", "trl", "accelerate", "deepspeed", "peft", "snakemake", "liger-kernel", "vllm"):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    return info


def proof_config(model: Path, data: Path, gpu: bool) -> dict:
    """The fast suite's tiny config: the default pair on the `single` launcher, and the plain row again under
    each ZeRO launcher (its own chain: the launcher is part of a stage's settings)."""
    config = tiny_config(model, data)
    config["model"]["mixed_precision"] = "bf16" if gpu else "no"
    for stage in STAGES:
        config["stages"][stage]["gpus"] = 1 if gpu else 0
    config["experiments"] = {launcher: {"overrides": {s: {"launcher": launcher} for s in STAGES}}
                             for launcher in LAUNCHERS[1:]}
    return config


def parameters_differ(folder: Path, parent: Path) -> bool:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    a = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    b = AutoModelForCausalLM.from_pretrained(parent).state_dict()
    return a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


def prove_dag(work: Path, gpu: bool) -> dict:
    """Runs the DAG once (every launcher's chain in it) and checks each trained stage."""
    from gsm_pipeline.layout import model_dir, parent_stage, runs
    from tiny_model import build_tiny_model

    shutil.rmtree(work, ignore_errors=True)  # a proof starts from nothing
    model = build_tiny_model(work / "tiny_model")
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", arithmetic_rows(120, seed=1))
    write_jsonl(data / "test.jsonl", arithmetic_rows(8, seed=2))
    dag = Dag(work / "dag", proof_config(model, data, gpu))
    start = time.perf_counter()
    done = dag.snakemake(check=False)
    out = {"seconds": round(time.perf_counter() - start, 1), "returncode": done.returncode, "stages": []}
    (work / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        out["error"] = done.stderr[-3000:]
        return out
    cfg = dag.config()
    table = runs(cfg)
    for (name, stage), run in table.items():
        parent_dir = dag.root / model_dir(cfg, name, parent_stage(cfg, name, stage))  # base: the fetched copy
        runtime = json.loads((dag.root / "results" / run / "log_history.json").read_text())[0]["runtime"]
        launcher = cfg.stage_config(name, stage)["launcher"]
        checks = {"loads_and_moved": parameters_differ(dag.root / "results" / run / "model", parent_dir),
                  "device": runtime["device"] == ("cuda" if gpu else "cpu"),
                  "bf16": runtime["trainer_bf16"] == gpu,
                  # the cost table's GPU memory: measured on a GPU, absent (not zero) on a CPU
                  "peak_gpu_memory": (runtime.get("peak_gpu_memory_gb") or 0) > 0 if gpu
                  else runtime.get("peak_gpu_memory_gb") is None,
                  "deepspeed": (runtime.get("zero_stage") == int(launcher[-1])) if launcher.startswith("zero")
                  else runtime.get("distributed") != "DEEPSPEED"}
        out["stages"].append({"experiment": name, "stage": stage, "run": run, "launcher": launcher,
                              "distributed": runtime.get("distributed"),
                              "peak_gpu_memory_gb": runtime.get("peak_gpu_memory_gb"), "checks": checks})
    report = dag.root / "results/report/index.html"
    out["report"] = report.exists()
    return out


def run_bench(script: str, args: list[str], log: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "tests/bench" / script), *args], capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    return {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 1),
            "tail": (done.stdout + done.stderr)[-1500:]}


def prove_bench(out: Path, carry: Path, gpu: bool) -> dict:
    if gpu:
        train = ["--data", str(carry / "gsm8k/train.jsonl"), "--tokenizer", str(carry / "tokenizer")]
        # all 1,319 GSM8K test problems, greedy, with each engine (loop, continuous batching, model.generate): the
        # issue-29 target is <= 30 s for the 135M model; 8 samples of all of them would not fit a 10-minute call
        evaluate = ["--questions", str(carry / "gsm8k/test.jsonl"), "--tokenizer", str(carry / "tokenizer"),
                    "--samples", "0"]
    else:
        train, evaluate = ["--smoke"], ["--smoke"]
    return {"training": run_bench("bench_training.py", [*train, "--out", str(out / "bench_training.json")],
                                  out / "bench_training.log"),
            "generation": run_bench("bench_generation.py", [*evaluate, "--out", str(out / "bench_generation.json")],
                                    out / "bench_generation.log")}


def passed(result: dict) -> bool:
    dag = result.get("dag")
    ok = dag is None or (dag["returncode"] == 0 and dag["report"] and len(dag["stages"]) == 3 * len(LAUNCHERS) + 3
                         and all(all(s["checks"].values()) for s in dag["stages"]))
    return ok and all(b["returncode"] == 0 for b in result.get("bench", {}).values())


def summary(result: dict) -> str:
    env = result["environment"]
    lines = [f"device: {env['gpu'] or 'cpu'} (torch {env['torch']}, CUDA {env['cuda']}, bf16 {env['bf16']}); "
             f"trl {env['trl']}, transformers {env['transformers']}, deepspeed {env['deepspeed']}"]
    if "dag" in result:
        dag = result["dag"]
        lines.append(f"DAG: exit {dag['returncode']} in {dag['seconds']} s; report {dag.get('report')}")
        for s in dag["stages"]:
            failed = [k for k, v in s["checks"].items() if not v]
            lines.append(f"  {s['experiment']:12} {s['stage']:9} {s['launcher']:7} {s['distributed'] or '-':10} "
                         + ("ok" if not failed else "FAILED " + ", ".join(failed)))
        if "error" in dag:
            lines.append(dag["error"][-1200:])
    for name, bench in result.get("bench", {}).items():
        lines.append(f"bench {name}: exit {bench['returncode']} in {bench['seconds']} s")
        lines.append(bench["tail"][-900:] if bench["returncode"] else "")
    lines.append("PROOF " + ("PASSED" if result["passed"] else "FAILED"))
    return "\n".join(line for line in lines if line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--carry", type=Path, default=REPO / ".gpu_carry", help="wheelhouse.py's folder")
    parser.add_argument("--cpu", action="store_true", help="no GPU: fp32 on the CPU, benchmarks at smoke size")
    parser.add_argument("--skip", nargs="*", default=[], choices=["dag", "bench"])
    args = parser.parse_args()
    import torch

    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the CPU proof", file=sys.stderr)
        return 2
    if args.cpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # DeepSpeed's CPU accelerator, for the ZeRO launchers
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"environment": environment(), "mode": "cpu" if args.cpu else "gpu"}
    if "dag" not in args.skip:
        result["dag"] = prove_dag(args.out / "work", gpu)
    if "bench" not in args.skip:
        result["bench"] = prove_bench(args.out, args.carry, gpu)
    result["passed"] = passed(result)
    (args.out / "prove.json").write_text(json.dumps(result, indent=2))
    print(summary(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
