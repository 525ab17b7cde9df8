"""The GPU proof in parts, each runnable alone, sized for a GPU lent for about 15 minutes in all.

    python tests/gpu/prove.py --out OUT [--work DIR] [--carry .gpu_carry] [--cpu] [--only PART ...] [--skip PART ...]

Parts, in order: `smoke` (one tiny-model stage through the DAG: prep SFT in bf16 on CUDA, the saved model loads
and moved, peak GPU memory recorded), `dag` (every stage with `gpus: 1` under the `single` launcher, full SFT and RL
again under `zero2` and `zero3`, ZeRO on one process, evaluations through the GPU's `auto` engine, the report),
`training` and `generation` (the benchmarks at GPU size against plain TRL, GSM8K rows and SmolLM2's tokenizer from
the carry folder; the generation benchmark runs continuous batching on CUDA at two batch sizes). On a GPU the first call
is `--only smoke` (under 3 minutes with start-up) and the second `--skip smoke` (about 6): each part has an
allowance (ALLOWANCE) after which it is stopped and reported as over time, so one slow part cannot cost the
others their run.
Run through tests/gpu/prove.sh, which first installs the carried wheels. With --cpu (the slow suite): the same
parts in fp32 on the CPU (DeepSpeed through its CPU accelerator), the benchmarks at smoke size, no allowances.
OUT receives at most four files, whatever runs (prove.json, prove.log from prove.sh, bench_training.json,
bench_generation.json): a call's results must come back as at most 8 files. Working files go to --work.
prove.json accumulates the parts of every call into the same OUT; exits 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import Dag, arithmetic_rows, tiny_config, write_jsonl  # noqa: E402

PARTS = ("smoke", "dag", "training", "generation")
# Seconds each part may run on the GPU. A lent GPU gives about 15 minutes in all, start-up (a minute or more)
# included, and 10 per call: the smoke call (install, then one stage) under 3 minutes, the rest under 6.
ALLOWANCE = {"smoke": 120, "dag": 160, "training": 130, "generation": 60}
# Each part fits its allowance at the slow end of its estimate on an H100: `python tests/gpu/estimate.py` prices
# the parts with `gsm-pipeline cost`'s arithmetic and throughput table (tests/test_gpu_proof_estimate.py checks).
LAUNCHERS = ("single", "zero2", "zero3")
STAGES = ("prep_sft", "full_sft", "rl")
ZERO_STAGES = ("full_sft", "rl")  # the stages the ZeRO rows train under their launcher


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
    """The fast suite's tiny config's plain row on the `single` launcher, and its full SFT and RL again under each
    ZeRO launcher (their own chains: the launcher is part of a stage's settings). The confidence row is left out:
    its GPU path is the plain row's, and its confidence-targets job would lengthen the part's critical path."""
    config = tiny_config(model, data)
    # on a GPU as the presets run: bf16 storage, bf16 autocast (the stages train through fp32 master weights)
    config["model"].update(mixed_precision="bf16", dtype="bfloat16") if gpu else config["model"].update(
        mixed_precision="no")
    for stage in STAGES:
        config["stages"][stage]["gpus"] = 1 if gpu else 0
    config["evaluation"]["gpus"] = 1 if gpu else 0  # the request: an evaluation runs where CUDA is, either way
    # the ZeRO rows run SFT (full SFT) and RL under their launcher from the plain row's prep SFT: each trainer
    # under each launcher, without two more 120-step prep stages on the part's longest chain
    rows = {launcher: {"overrides": {s: {"launcher": launcher} for s in ZERO_STAGES}} for launcher in LAUNCHERS[1:]}
    config["experiments"] = {"tagged_conf": None, **rows}
    return config


def moved_share(folder: Path, parent: Path) -> float:
    """The share of the saved model's weights that differ from its parent's (0 where the two do not match): a
    stage whose updates rounded away in bf16 saves a model that moved in a few percent of its weights."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    a = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    b = AutoModelForCausalLM.from_pretrained(parent).state_dict()
    if a.keys() != b.keys():
        return 0.0
    return sum(int((a[k] != b[k]).sum()) for k in a) / sum(v.numel() for v in a.values())


def stage_checks(dag: Dag, name: str, stage: str, gpu: bool) -> dict:
    """What a trained stage must show: a loadable model that moved, trained on the device and in the precision
    asked for, its GPU memory measured (absent, not zero, on a CPU), under the distributed mode its launcher names."""
    from gsm_pipeline.layout import model_dir, parent_stage, stage_run

    cfg = dag.config()
    run = stage_run(cfg, name, stage)
    parent_dir = dag.root / model_dir(cfg, name, parent_stage(cfg, name, stage))  # base: the fetched copy
    runtime = json.loads((dag.root / "results" / run / "log_history.json").read_text())[0]["runtime"]
    launcher = cfg.stage_config(name, stage)["launcher"]
    moved = moved_share(dag.root / "results" / run / "model", parent_dir)
    # weights trained in fp32 (masters), or by DeepSpeed, which keeps fp32 masters of its own
    masters = runtime.get("weights") == "float32" or launcher.startswith("zero")
    checks = {"loads_and_moved": moved >= 0.5, "fp32_master_weights": masters,
              "device": runtime["device"] == ("cuda" if gpu else "cpu"),
              "bf16": runtime["trainer_bf16"] == gpu,
              "peak_gpu_memory": (runtime.get("peak_gpu_memory_gb") or 0) > 0 if gpu
              else runtime.get("peak_gpu_memory_gb") is None,
              "deepspeed": (runtime.get("zero_stage") == int(launcher[-1])) if launcher.startswith("zero")
              else runtime.get("distributed") != "DEEPSPEED"}
    return {"experiment": name, "stage": stage, "run": run, "launcher": launcher, "moved_share": round(moved, 4),
            "distributed": runtime.get("distributed"), "peak_gpu_memory_gb": runtime.get("peak_gpu_memory_gb"),
            "checks": checks}


def new_dag(work: Path, gpu: bool) -> Dag:
    """A fresh working directory (a proof starts from nothing) with the tiny model, its rows and the config."""
    from tiny_model import build_tiny_model

    shutil.rmtree(work, ignore_errors=True)
    model = build_tiny_model(work / "tiny_model")
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", arithmetic_rows(120, seed=1))
    write_jsonl(data / "test.jsonl", arithmetic_rows(8, seed=2))
    return Dag(work / "dag", proof_config(model, data, gpu))


def run_dag(dag: Dag, allowance: int | None, *targets: str) -> dict:
    """Snakemake in the proof's folder. On a GPU (an allowance set) 8 jobs at a time: the tiny model's jobs spend
    their seconds importing and starting CUDA, each launch has its own port, and the node has 16 cores."""
    prefix = ("timeout", str(allowance)) if allowance else ()
    start = time.perf_counter()
    done = dag.snakemake(*targets, check=False, prefix=prefix, cores=8 if allowance else 2)
    out = {"seconds": round(time.perf_counter() - start, 1), "returncode": done.returncode}
    if done.returncode != 0:
        out["error"] = ("over its allowance of %d s\n" % allowance if done.returncode == 124 else "") \
            + done.stderr[-3000:]
        print(done.stdout[-4000:] + done.stderr[-8000:], flush=True)  # into prove.log
    return out


def prove_smoke(work: Path, gpu: bool, allowance: int | None) -> dict:
    """The shortest run that says whether the GPU path works at all: one stage, through the DAG."""
    from gsm_pipeline.layout import model_dir

    dag = new_dag(work, gpu)
    out = run_dag(dag, allowance, model_dir(dag.config(), "tagged", "prep_sft"))
    out["stages"] = [] if out["returncode"] else [stage_checks(dag, "tagged", "prep_sft", gpu)]
    return out


def prove_dag(work: Path, gpu: bool, allowance: int | None) -> dict:
    """The whole DAG once (every launcher's chain in it), each trained stage checked, the report built."""
    from gsm_pipeline.layout import runs

    dag = new_dag(work, gpu)
    out = run_dag(dag, allowance)
    out["stages"] = [] if out["returncode"] else [stage_checks(dag, name, stage, gpu)
                                                  for name, stage in runs(dag.config())]
    out["report"] = (dag.root / "results/report/index.html").exists()
    return out


def run_bench(script: str, args: list[str], allowance: int | None) -> dict:
    """A benchmark in its own process; its output goes into prove.log, its JSON (written after every
    variant, so a part stopped at its allowance keeps what it measured) into OUT."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(REPO / "tests/bench" / script), *args], capture_output=True,
                              text=True, timeout=allowance)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as over:
        code = 124
        output = "".join(x.decode() if isinstance(x, bytes) else x or "" for x in (over.stdout, over.stderr))
        output += f"\nover its allowance of {allowance} s"
    print(output, flush=True)
    return {"returncode": code, "seconds": round(time.perf_counter() - start, 1), "tail": output[-1500:]}


# The benchmarks' workloads on a GPU (tests/gpu/estimate.py prices them). training: the 135M architecture only, one
# timed update of plain TRL and of ours, each kind (the 0.5B rows and the other variants are a separate run of the
# benchmark); generation: greedy continuous batching (the GPU's engine) on 256 GSM8K problems at a batch of 64 and
# at 256 in one call, what a larger evaluation.batch_size (the presets' 1,024; 256 for Qwen3-4B) buys.
BENCH = {
    "training": {"arch": "smollm2-135m", "updates": 1, "rows": 1024, "completion-length": 128,
                 "variants": ["trl_padded_b16", "trl_default", "ours"]},
    "generation": {"problems": 256, "max-new-tokens": 192, "samples": 0, "engines": "continuous",
                   "batch-size": [64, 256]},
}


def bench_args(part: str, out: Path, carry: Path, gpu: bool) -> list[str]:
    if not gpu:  # smoke sizes; the generation benchmark at two batch sizes, and its GRPO update with each engine
        return ["--smoke", "--out", str(out / f"bench_{part}.json"),
                *(["--grpo-steps", "1", "--batch-size", "4", "16"] if part == "generation" else [])]
    data = ["--data", str(carry / "gsm8k/train.jsonl")] if part == "training" else [
        "--questions", str(carry / "gsm8k/test.jsonl")]
    options = [flag for key, value in BENCH[part].items()
               for flag in (f"--{key}", *map(str, value if isinstance(value, list) else [value]))]
    return [*data, "--tokenizer", str(carry / "tokenizer"), *options, "--out", str(out / f"bench_{part}.json")]


def part_passed(name: str, part: dict) -> bool:
    if part["returncode"] != 0:
        return False
    if name in ("smoke", "dag"):
        expected = 1 if name == "smoke" else len(STAGES) * len(LAUNCHERS)
        return len(part["stages"]) == expected and all(all(s["checks"].values()) for s in part["stages"]) \
            and part.get("report", True)
    return True


def summary(result: dict) -> str:
    env = result["environment"]
    lines = [f"device: {env['gpu'] or 'cpu'} (torch {env['torch']}, CUDA {env['cuda']}, bf16 {env['bf16']}); "
             f"trl {env['trl']}, transformers {env['transformers']}, deepspeed {env['deepspeed']}"]
    for name, part in result["parts"].items():
        lines.append(f"{name}: exit {part['returncode']} in {part['seconds']} s"
                     + (f" (allowance {part['allowance']} s)" if part.get("allowance") else "")
                     + ("" if "report" not in part else f"; report {part['report']}"))
        for s in part.get("stages", []):
            failed = [k for k, v in s["checks"].items() if not v]
            lines.append(f"  {s['experiment']:12} {s['stage']:9} {s['launcher']:7} {s['distributed'] or '-':10} "
                         + ("ok" if not failed else "FAILED " + ", ".join(failed)))
        if part["returncode"]:
            lines.append((part.get("error") or part.get("tail", ""))[-1200:])
    lines.append("PROOF " + ("PASSED" if result["passed"] else "FAILED"))
    return "\n".join(line for line in lines if line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="at most four files land here")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gsm_prove",
                        help="working files (the DAG, the tiny model): never under --out")
    parser.add_argument("--carry", type=Path, default=REPO / ".gpu_carry", help="wheelhouse.py's folder")
    parser.add_argument("--cpu", action="store_true", help="no GPU: fp32 on the CPU, benchmarks at smoke size")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts only")
    parser.add_argument("--skip", nargs="+", default=[], choices=PARTS, help="run every part but these")
    args = parser.parse_args()
    import torch

    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the CPU proof", file=sys.stderr)
        return 2
    if args.cpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # DeepSpeed's CPU accelerator, for the ZeRO launchers
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "prove.json"
    result: dict = {"environment": environment(), "mode": "gpu" if gpu else "cpu", "parts": {}}
    if record.exists():  # an earlier call into the same OUT (smoke, then the rest): one record of both
        earlier = json.loads(record.read_text())
        if earlier.get("mode") == result["mode"]:
            result["parts"] = earlier.get("parts", {})
    for name in [p for p in PARTS if p in (args.only or PARTS) and p not in args.skip]:
        allowance = ALLOWANCE[name] if gpu else None
        if name in ("smoke", "dag"):
            prove = prove_smoke if name == "smoke" else prove_dag
            part = prove(args.work / name, gpu, allowance)
        else:
            part = run_bench(f"bench_{name}.py", bench_args(name, args.out, args.carry, gpu), allowance)
        result["parts"][name] = {**part, "allowance": allowance, "passed": part_passed(name, part)}
        record.write_text(json.dumps(result, indent=2))  # after every part: a call cut short keeps what ran
    result["passed"] = bool(result["parts"]) and all(p["passed"] for p in result["parts"].values())
    record.write_text(json.dumps(result, indent=2))
    print(summary(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
