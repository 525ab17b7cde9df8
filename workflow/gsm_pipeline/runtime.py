"""How a job runs on the machine it landed on: mixed precision resolved from config, the trainer's numerics and
speed settings, and a record of the device that every job prints and stores beside its numbers.

Precision is resolved where the job runs (a Slurm node may differ from the submitting machine), never inherited
from TRL, whose configs default to `bf16=True`. bf16 pays only where the CPU executes it in hardware: AVX-512 BF16
or AMX on x86 (~1.5x faster than fp32), the BF16 extension on Arm. Elsewhere oneDNN emulates it, and says it
"supports" bf16 on any AVX-512 core: 2.4x slower for training on a Cascade Lake Xeon, 7-13x on an AVX2-only CPU.
So the hardware flags decide, and torch must also be allowed to use them: `ATEN_CPU_CAPABILITY=avx2` or a
`ONEDNN_MAX_CPU_ISA` below AVX512_CORE_BF16 makes a bf16 CPU run as one without.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .model_io import load_model_and_tokenizer

if TYPE_CHECKING:
    from .settings.base import Numerics
    from .settings.evaluation import EvalJob, TargetsJob
    from .settings.training import TrainingJob

MIXED_PRECISION = ("auto", "bf16", "fp16", "no")


@dataclass(frozen=True)
class Precision:
    """The resolved choice: `autocast` is 'bf16', 'fp16' or None (the weights' own dtype), with the reason."""
    asked: str
    autocast: str | None
    reason: str


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# oneDNN ISA levels (ONEDNN_MAX_CPU_ISA, or the older DNNL_ name) at which it still runs bf16 dot products in
# hardware; a lower or unknown limit keeps bf16 off.
ONEDNN_BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
                    "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL"}


def cpu_bf16_evidence() -> dict[str, Any]:
    """What torch says about bf16 on this CPU: the facts `cpu_native_bf16` decides from, kept in every record."""
    import torch

    return {"machine": platform.machine(), "capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
            "amx": bool(torch.cpu._is_amx_tile_supported()),
            "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")}


def bf16_decision(facts: dict[str, Any]) -> tuple[bool, str]:
    """(native, why) from `cpu_bf16_evidence()`: x86 needs AVX-512 BF16 or AMX *and* torch's kernels allowed to use
    them; on Arm, oneDNN's answer is the BF16 extension itself."""
    machine = facts["machine"].lower()
    if machine in ("aarch64", "arm64"):
        return (True, "Arm BF16 extension") if facts["onednn_bf16"] else (False, "Arm CPU without the BF16 extension")
    if machine not in ("x86_64", "amd64"):
        return False, f"no known native bf16 on {facts['machine']}"
    if not (facts["avx512_bf16"] or facts["amx"]):
        return False, "no AVX-512 BF16 or AMX (oneDNN would emulate bf16)"
    if not facts["capability"].startswith("AVX512"):
        return False, f"torch's kernels limited to {facts['capability']}"
    isa = facts["onednn_max_isa"]
    if (isa and isa.upper() not in ONEDNN_BF16_ISAS) or not facts["onednn_bf16"]:
        return False, f"oneDNN limited to {isa}" if isa else "oneDNN runs no bf16 here"
    return True, "AMX" if facts["amx"] else "AVX-512 BF16"


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU executes bf16 in hardware and torch may use it, and why (see `bf16_decision`)."""
    return bf16_decision(cpu_bf16_evidence())


def cpu_native_bf16() -> bool:
    return cpu_bf16()[0]


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def peak_gpu_memory_gb() -> float | None:
    """This process's peak CUDA memory held by PyTorch's allocator (None on a CPU, where Snakemake's benchmark
    file has the resident peak). Reserved, not allocated: what the job kept from other users of the GPU."""
    import torch

    return torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else None


def resolve_precision(asked: str, *, gpu: bool | None = None, native_bf16: bool | None = None) -> Precision:
    """`auto`: bf16 on GPUs that support it and on CPUs with native bf16, else none (fp32 or the weights'
    dtype). An explicit `bf16` is honoured everywhere, with a warning where the CPU only emulates it."""
    import torch

    if asked not in MIXED_PRECISION:
        raise ConfigError(f"model.mixed_precision: {asked!r} is not one of {', '.join(MIXED_PRECISION)}")
    gpu = on_gpu() if gpu is None else gpu
    if gpu:
        supported = torch.cuda.is_bf16_supported()
        if asked == "auto":
            return (Precision(asked, "bf16", "auto: the GPU supports bf16") if supported
                    else Precision(asked, None, "auto: the GPU has no bf16; full precision"))
        if asked == "bf16" and not supported:
            raise ConfigError("model.mixed_precision: bf16 asked for, but this GPU does not support it")
        return Precision(asked, None if asked == "no" else asked, f"asked for {asked}")
    native, why = cpu_bf16() if native_bf16 is None else (native_bf16, "given")
    if asked == "fp16":
        raise ConfigError("model.mixed_precision: fp16 needs a GPU; use bf16 or no on a CPU")
    if asked == "auto":
        return (Precision(asked, "bf16", f"auto: the CPU runs bf16 natively ({why})") if native
                else Precision(asked, None, f"auto: the CPU has no native bf16 ({why}); fp32"))
    if asked == "bf16" and not native:
        _warn_once("warning: model.mixed_precision bf16 on a CPU without native bf16: emulated, expect it to be "
                   "several times slower than fp32 (mixed_precision: auto chooses fp32 here)")
        return Precision(asked, "bf16", "asked for bf16; emulated on this CPU")
    return Precision(asked, None if asked == "no" else "bf16", f"asked for {asked}")


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr, flush=True)


def trainer_numerics(job: TrainingJob, precision: Precision) -> dict[str, Any]:
    """Every TrainingArguments field that changes numerics or speed, set from the job (none left to TRL)."""
    import torch

    tf32 = job.tf32 and torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    return {"bf16": precision.autocast == "bf16", "fp16": precision.autocast == "fp16", "tf32": tf32,
            "gradient_checkpointing": job.gradient_checkpointing,
            "use_liger_kernel": job.liger_kernel, "torch_compile": job.torch_compile,
            "use_cpu": not on_gpu()}


def describe(dtype: str, precision: Precision, threads: int | None = None, **settings: Any) -> dict[str, Any]:
    """What ran: device, weights dtype, autocast, threads and the CPU (capability, native bf16) or GPU."""
    import torch

    evidence = cpu_bf16_evidence()
    native, why = bf16_decision(evidence)
    info: dict[str, Any] = {"device": "cuda" if on_gpu() else "cpu", "dtype": dtype,
                            "autocast": precision.autocast or "none", "mixed_precision": precision.asked,
                            "precision_reason": precision.reason, "torch_threads": threads or torch.get_num_threads(),
                            "cpu": cpu_name(), "cpu_capability": evidence["capability"],
                            "cpu_native_bf16": native, "cpu_bf16_why": why, "cpu_bf16_evidence": evidence,
                            "torch": torch.__version__}
    if on_gpu():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpus_visible"] = torch.cuda.device_count()
    limits = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
              if k in os.environ}
    if limits:
        info["cpu_limits"] = limits
    return {**info, **settings}


def announce(info: dict[str, Any]) -> None:
    """The job's first log line: how it runs, so no number is ever read without it."""
    where = info.get("gpu") or (f"{info['cpu']} (capability {info['cpu_capability']}, native bf16 "
                                f"{'yes' if info['cpu_native_bf16'] else 'no'}: {info['cpu_bf16_why']})")
    extras = " ".join(f"{k}={v}" for k, v in info.items() if k in ("gradient_checkpointing", "use_liger_kernel",
                                                                    "torch_compile", "tf32", "engine"))
    print(f"runtime: {info['device']} {where}; weights {info['dtype']}, autocast {info['autocast']} "
          f"({info['precision_reason']}), {info['torch_threads']} threads {extras}".rstrip(), file=sys.stderr,
          flush=True)


def autocast(precision: Precision):
    """The autocast context for inference (generation, scoring), matching what training used."""
    import torch

    if precision.autocast is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision.autocast == "bf16" else torch.float16
    return torch.autocast("cuda" if on_gpu() else "cpu", dtype=dtype)


def job_precision(job: Numerics) -> Precision:
    return resolve_precision(job.mixed_precision)


def load_for_generation(path: str | Path, job: EvalJob | TargetsJob, threads: int | None):
    """Model and tokenizer (left-padded) for a generating job, its resolved precision and how it runs (the
    generation engine included), announced."""
    from .settings.generation import resolve_engine

    precision = job_precision(job)
    model, tokenizer = load_model_and_tokenizer(path, job.dtype, padding_side="left")
    engine, why = resolve_engine(job.engine, model.device)
    info = describe(job.dtype, precision, threads, weights=str(model.dtype).removeprefix("torch."), engine=engine,
                    engine_why=why)
    announce(info)
    return model, tokenizer, precision, info


def seed_everything(seed: int, threads: int | None = None) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
