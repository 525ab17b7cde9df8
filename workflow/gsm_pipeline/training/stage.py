"""What every training stage shares, whatever its kind: loading, trainer arguments, LoRA, saving, and the body of every
entry point (`run_stage`). Which checkpoint a run may resume is `checkpoints.py`'s."""
from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrainingError
from ..model_card import write_training_card
from ..model_io import save_atomically
from ..runtime import announce, describe, job_precision, on_gpu, peak_gpu_memory_gb, seed_everything, trainer_numerics
from ..settings.training import TrainingJob
from ..stages import by_method
from .arguments import lora_kwargs, rollout_engine, trainer_kwargs
from .checkpoints import clear_curve_models, newest_checkpoint, reset_stale_checkpoints, retire_checkpoints, run_stamp
from .curve import keep_steps_callback
from .fields import check_training_args, table_from


def trainer_arguments(config_cls, job: TrainingJob, output_dir: Path):
    """Build the job's TRL config (`arguments.trainer_kwargs`), naming a bad key."""
    fields = table_from(config_cls)
    # validation made this check already where TRL was importable; a job built by hand gets it here
    check_training_args(f"stages.{job.stage}", job.stage, job.training_args, fields, rl=getattr(job, "rl", "grpo"))
    precision = job_precision(job)
    # accelerate launch exports its file's mixed_precision (bf16 in the ZeRO files) to the job, and DeepSpeed
    # refuses TrainingArguments that disagree: the precision resolved on this machine decides for both.
    os.environ["ACCELERATE_MIXED_PRECISION"] = precision.autocast or "no"
    kwargs = trainer_kwargs(job, trainer_numerics(job, precision), fields,
                            gloo=not on_gpu() and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    try:
        return config_cls(output_dir=str(output_dir), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stages.{job.stage}.training_args: {exc}") from None


def training_dtype(job: TrainingJob) -> str:
    """The dtype a stage holds its trained weights in: float32 master weights whatever `model.dtype` (the dtype
    models are stored, evaluated and saved in), since an optimizer step on bf16 weights rounds away every update
    below half a bf16 step (a weight near 0.02 moves only in steps of 1.2e-4; at a learning rate of 1e-6 about 98%
    of updates vanish). Autocast still computes in bf16. Except where the weights are not what the optimizer
    updates in place: DeepSpeed ZeRO keeps fp32 masters of its own, and PEFT keeps LoRA adapters in fp32 over a
    frozen base."""
    if job.dtype == "float32" or job.launcher in ("zero2", "zero3") or job.finetune == "lora":
        return job.dtype
    return "float32"


def runtime_record(trainer, job: TrainingJob, threads: int | None) -> dict[str, Any]:
    """How the trainer actually runs (read back from its arguments), printed first and kept in the log history."""
    args = trainer.args
    weights = str(trainer.accelerator.unwrap_model(trainer.model).dtype).removeprefix("torch.")
    info = describe(job.dtype, job_precision(job), threads, weights=weights, saved_as=job.dtype,
                    gradient_checkpointing=args.gradient_checkpointing, use_liger_kernel=args.use_liger_kernel,
                    torch_compile=args.torch_compile, tf32=bool(args.tf32),
                    trainer_bf16=args.bf16, trainer_fp16=args.fp16, processes=trainer.accelerator.num_processes,
                    distributed=trainer.accelerator.distributed_type.value, zero_stage=zero_stage(trainer),
                    parameters=parameter_count(trainer.model),
                    samples_per_step=args.per_device_train_batch_size * args.gradient_accumulation_steps
                    * trainer.accelerator.num_processes, **rollout_record(job, args))
    announce(info)
    return info


def rollout_record(job: TrainingJob, args) -> dict[str, Any]:
    """How an RL stage's rollouts ran and which objective it optimised (TRL 1.16's GRPOTrainer defaults to the
    `dapo` loss), read back from the TRL config the trainer holds."""
    if not by_method(job.stage):
        return {}
    objective = {"objective": {key: getattr(args, key) for key in ("loss_type", "scale_rewards", "beta")
                               if hasattr(args, key)}}
    if getattr(args, "use_vllm", False):
        return {"engine": "vllm", "engine_why": "training_args.use_vllm (not tested by this project)", **objective}
    _, why = rollout_engine(job, gpu=on_gpu(), autocast=args.bf16 or args.fp16)
    return {"engine": "continuous" if args.use_transformers_continuous_batching else "loop", "engine_why": why,
            **objective}


def parameter_count(model) -> int:
    """Distinct parameters (tied weights once; ZeRO-3's partitioned ones by their full size): N in the report's
    FLOPs estimate."""
    seen = {id(p): getattr(p, "ds_numel", p.numel()) for p in model.parameters()}
    return int(sum(seen.values()))


def zero_stage(trainer) -> int | None:
    """DeepSpeed's ZeRO stage when the launcher put the trainer under DeepSpeed (the proof checks it ran)."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin.zero_stage if plugin is not None else None


def lora_config(job: TrainingJob):
    kwargs = lora_kwargs(job)
    if kwargs is None:
        return None
    from peft import LoraConfig

    return LoraConfig(**kwargs)


def is_main_process() -> bool:
    """Rank 0 under torchrun / accelerate launch (and a plain `python -m` run)."""
    return int(os.environ.get("RANK", "0")) == 0


def is_zero3(trainer) -> bool:
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return bool(getattr(trainer, "is_deepspeed_enabled", False) and plugin and plugin.zero_stage == 3)


def save_final(trainer, tokenizer, out_dir: str | Path, dtype: str, card=None) -> None:
    """Merge LoRA adapters, then save atomically (rank 0 only): the output folder appears only when complete.
    Under ZeRO-3 every rank holds a shard, so the full weights are gathered first (a collective call)."""
    import torch

    # Under DeepSpeed, `trainer.model` is the bare module; the gather needs the engine that holds the shards.
    state = trainer.accelerator.get_state_dict(trainer.deepspeed) if is_zero3(trainer) else None
    if not trainer.is_world_process_zero():
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    if state is not None:
        # The gather returns tied weights (lm_head = embeddings) twice; a plain save writes them once.
        tied = getattr(model, "all_tied_weights_keys", None) or {}
        state = {k: v.to(getattr(torch, dtype)) for k, v in state.items() if k not in tied}
    else:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model = model.to(getattr(torch, dtype))
    save_atomically(model, tokenizer, out_dir, state, card)


def leave_process_group(trainer) -> None:
    """Every rank waits for rank 0's save, then leaves the process group before the interpreter exits. A rank
    that exits with the group still up can abort in C++ teardown after a complete save (seen once in CI under
    ZeRO-3 on the CPU: "terminate called without an active exception", SIGABRT, so the launch failed)."""
    import torch.distributed as dist

    trainer.accelerator.wait_for_everyone()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def finite_loss_guard():
    """A callback that stops training at the first non-finite loss, before that step is checkpointed.

    Trainer logs a step before it saves it, so raising here keeps the last good checkpoint as
    the newest one on disk.
    """
    import math

    from transformers import TrainerCallback

    class FiniteLossGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise TrainingError(f"loss is {loss} at step {state.global_step}; the newest checkpoint in "
                                    f"{args.output_dir} is the last good one (lower the learning rate?)")

    return FiniteLossGuard()


def targets_cost(targets: Path) -> dict[str, Any]:
    """Which confidence targets the stage trained on and the tokens their job generated (from the summary
    beside them), so the report can charge that sampling once to the chain that used it."""
    summary = targets.with_suffix(".summary.json")
    tokens = json.loads(summary.read_text()).get("generated_tokens") if summary.is_file() else None
    return {"name": targets.stem, "generated_tokens": tokens}


def write_log_history(trainer, path: str | Path, runtime: dict[str, Any] | None = None) -> None:
    """The trainer's log history, led by an entry saying how the job ran (it has no step, so curves skip it)."""
    head = [{"runtime": runtime}] if runtime else []
    Path(path).write_text(json.dumps(head + trainer.state.log_history, indent=1))


def run_stage(settings: type[TrainingJob], build_trainer, description: str, argv: list[str] | None = None,
              reads: dict[str, str] | None = None) -> None:
    """The shared body of every training entry point: parse the typed job, resume, train, save. `reads`: the
    files the job may read besides its parent and data (`TrainingJob.reads`), each a flag `--<name>` and its help;
    those given reach `build_trainer` as keyword arguments and are part of the checkpoint stamp."""
    import argparse

    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", required=True, help="the job's settings as JSON")
    parser.add_argument("--parent", required=True, help="model folder to start from")
    parser.add_argument("--data", required=True, help="training rows (JSONL with question and answer)")
    parser.add_argument("--out", required=True, help="where the trained model is saved")
    parser.add_argument("--checkpoints", required=True, help="stage-local checkpoint folder")
    parser.add_argument("--log-history", required=True, help="trainer log history (JSON)")
    for name, help_text in (reads or {}).items():
        parser.add_argument(f"--{name.replace('_', '-')}", help=help_text)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args(argv)
    job = settings.parse(args.config)
    seed_everything(job.seed, args.threads)
    folder = Path(args.checkpoints)
    inputs = {name: getattr(args, name) for name in reads or {}}
    if is_main_process():  # under accelerate launch every rank runs this; one of them tidies the folder
        reset_stale_checkpoints(folder, run_stamp(job, {"parent": args.parent, "data": args.data, **inputs}))
    extra = {name: path for name, path in inputs.items() if path}
    # a job may also return what it did before training, for the log's runtime entry (e.g. what it sampled)
    trainer, tokenizer, *before = build_trainer(job, args.parent, args.data, folder, **extra)
    runtime = {**runtime_record(trainer, job, args.threads), **(before[0] if before else {})}
    if extra.get("confidence_targets"):  # charged once, by reporting/compute.py, to the chain that trained on them
        runtime["confidence_targets"] = targets_cost(Path(extra["confidence_targets"]))
    trainer.accelerator.wait_for_everyone()
    resume = newest_checkpoint(folder)
    if trainer.is_world_process_zero():
        clear_curve_models(Path(args.out).parent, int(resume.rsplit("-", 1)[1]) if resume else 0)
    trainer.add_callback(finite_loss_guard())
    if steps := job.curve_steps():
        trainer.add_callback(keep_steps_callback(steps, Path(args.out).parent, folder, job.stage))
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        runtime["peak_gpu_memory_gb"] = peak_gpu_memory_gb()  # this process (rank 0), since this launch
        write_log_history(trainer, args.log_history, runtime)
    card = partial(write_training_card, stage=job.stage, run=Path(args.out).parent.name, parent=args.parent,
                   data=args.data, settings=job.stamp())
    save_final(trainer, tokenizer, args.out, job.dtype, card)
    leave_process_group(trainer)
    if is_main_process():
        retire_checkpoints(folder)
