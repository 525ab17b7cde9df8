"""The TRL config and PEFT adapter config a training job is built from, assembled in one place.

The job builds them when it starts; the dry-run builds the very same objects for every planned stage, with the
process count that stage will launch with, so TRL's and PEFT's own checks (`__post_init__`: a generation batch
that `num_generations` does not divide, ...) refuse a config before any job instead of after hours of SFT. The
dry-run also reads back what TRL resolved (batch, accumulation, generation batch, epochs) to count the stage's
optimizer steps. Importing TRL costs seconds, so each verdict is cached on disk per TRL and transformers
version, as the field table is.
"""
from __future__ import annotations

import enum
import re
import warnings
from collections.abc import Callable
from typing import Any

from ..disk_cache import cached
from ..errors import ConfigError
from ..settings.generation import CONTINUOUS_UNDER_AUTOCAST, resolve_engine
from ..stages import by_method
from .fields import installed_tables, installed_versions
from .methods import RL_METHODS, config_path, load

# logging_nan_inf_filter would hide a NaN loss behind the running mean; the guard needs to see it.
PIPELINE_DEFAULTS = {"report_to": "none", "logging_steps": 1, "logging_nan_inf_filter": False,
                     "save_strategy": "steps", "save_steps": 10, "save_total_limit": 2, "dataloader_num_workers": 0}
# What the dry-run reads back from a built config (TRL's __post_init__ resolves the generation batch).
FACTS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
         "save_strategy", "save_steps", "packing", "num_generations", "generation_batch_size",
         "steps_per_generation", "num_iterations", "dataloader_drop_last")


def config_name(job) -> str:
    """The dotted path of the TRL config class a job is built from: its kind's, or its RL method's."""
    return config_path(job.stage, getattr(job, "rl", "grpo"))


def trainer_kwargs(job, numerics: dict[str, Any], fields, *, gloo: bool) -> dict[str, Any]:
    """Every argument of the job's TRL config but output_dir: the pipeline's defaults, the stage's training_args,
    the numerics (never TRL's) and the job's own fields. `gloo`: several CPU processes (accelerate launch on a CPU
    node) talk over gloo."""
    defaults = {**PIPELINE_DEFAULTS, **({"ddp_backend": "gloo"} if gloo else {})}
    numerics = dict(numerics)
    if "activation_checkpointing" in fields and "gradient_checkpointing" in numerics:  # transformers >= 5.23 name
        numerics["activation_checkpointing"] = numerics.pop("gradient_checkpointing")
    return {"seed": job.seed, **defaults, **job.training_args, **numerics, **job.trainer_fixed(),
            **rollout_kwargs(job, gpu=not numerics["use_cpu"], autocast=numerics["bf16"] or numerics["fp16"])}


def rollout_engine(job, *, gpu: bool, autocast: bool) -> tuple[str, str]:
    """(engine, why) of an RL job's rollouts: the one engine setting (generation.engine), resolved as evaluation
    resolves it for the device, except where TRL 1.16 cannot roll out through continuous batching: under mixed
    precision its paged cache meets accelerate's fp32 output wrapper and generation fails (seen on the CPU in
    bf16), and it casts the policy to bf16 in place first. There `auto` rolls out with TRL's model.generate and
    an explicit `continuous` is refused."""
    engine, why = resolve_engine(job.engine, "cuda" if gpu else "cpu")
    if engine == "continuous" and autocast:
        if job.engine == "continuous":
            raise ConfigError(CONTINUOUS_UNDER_AUTOCAST)
        return "loop", f"{why}, but not for TRL 1.16's RL rollouts under mixed precision: TRL's model.generate"
    return engine, why if engine == "continuous" else f"{why}; RL rollouts: TRL's model.generate"


def rollout_kwargs(job, *, gpu: bool, autocast: bool) -> dict[str, Any]:
    """The switch the row's TRL trainer reads for the rollout engine (none for an SFT job)."""
    if not by_method(job.stage):
        return {}
    engine, _ = rollout_engine(job, gpu=gpu, autocast=autocast)
    return dict(RL_METHODS[job.rl].rollouts.get(engine, {}))


def lora_kwargs(job) -> dict[str, Any] | None:
    if job.finetune != "lora":
        return None
    lora = job.lora
    return {"r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout,
            "target_modules": lora.target_modules, "task_type": "CAUSAL_LM"}


def planned_numerics(job) -> dict[str, Any]:
    """The numerics the dry-run builds with: the job's own speed settings. Precision and device are resolved on the
    machine that runs the job (a CPU login node cannot build a bf16 CUDA config), so they are not checked here."""
    return {"bf16": False, "fp16": False, "tf32": False, "gradient_checkpointing": job.gradient_checkpointing,
            "use_liger_kernel": False, "torch_compile": job.torch_compile, "use_cpu": True}


Locate = Callable[[str], str]  # a stage key ("num_generations", "training_args.max_steps") -> its config path


def planned_config(job, locate: Locate) -> dict[str, Any] | None:
    """Build the job's TRL config (and LoRA config) as the job will, with its process count, and return what TRL
    resolved (`FACTS`); a refusal is one line naming the config keys involved. None where TRL is not installed
    (Snakemake in an environment of its own): the job then checks when it starts."""
    tables = installed_tables()
    if tables is None:
        return None
    name, processes = config_name(job), job.process_count()
    # no process group at the dry-run: the backend is the launcher's concern, as precision is the machine's
    kwargs = trainer_kwargs(job, planned_numerics(job), tables[name], gloo=False)
    lora = lora_kwargs(job)
    if lora is not None:
        error = _verdict("peft.LoraConfig", lora, 1)["error"]
        if error:
            raise ConfigError(f"{locate('lora')}: peft.LoraConfig refuses it: {error}")
    verdict = _verdict(name, kwargs, processes)
    if verdict["error"]:
        raise ConfigError(_refusal(job, name, processes, verdict, locate))
    return verdict["facts"]


def _refusal(job, name: str, processes: int, verdict: dict[str, Any], locate: Locate) -> str:
    """Name the settings the message mentions (a generation batch TRL derived: the batch settings behind it; a
    generation setting: the key, or the generation_kwargs it is in)."""
    message = verdict["error"]
    words = set(re.findall(r"[a-z_]+", message))
    if "generation_batch_size" in words and "generation_batch_size" not in job.training_args:
        words |= {"per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation"}
    if words & set(job.training_args.get("generation_kwargs") or {}):
        words.add("generation_kwargs")
    keys = [locate(f"training_args.{k}") for k in job.training_args if k in words]
    keys += [locate(k) for k in job.trainer_fixed() if k in words]
    named = ", ".join(keys) or locate("training_args")
    if verdict.get("by") == "generation":
        return f"{named}: transformers refuses the RL stage's generation settings: {message}"
    plural = "process" if processes == 1 else "processes"
    return f"{named}: {name} refuses this stage's settings with {processes} {plural}: {message}"


def _verdict(target: str, kwargs: dict[str, Any], processes: int) -> dict[str, Any]:
    """{"error": TRL's or PEFT's one-line refusal or None, "facts": resolved FACTS}, cached on disk."""
    return cached("config_checks", installed_versions(), __file__, [target, kwargs, processes],
                  lambda: _build(target, kwargs, processes))


def _build(target: str, kwargs: dict[str, Any], processes: int) -> dict[str, Any]:
    cls = load(target)
    name = target.rpartition(".")[2]
    if hasattr(cls, "world_size"):  # TRL sizes the generation batch by the processes the job will launch
        cls = type(name, (cls,), {"world_size": property(lambda self: processes)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notes belong to the job's log, not the dry-run
            built = cls(**({"output_dir": "checkpoints"} if hasattr(cls, "world_size") else {}), **kwargs)
    except (TypeError, ValueError) as exc:
        return {"error": _first_line(exc), "facts": None}
    if hasattr(built, "num_generations"):  # an RL config: its rollouts' generation settings too
        error = rollout_generation_error(built)
        if error:
            return {"error": error, "facts": None, "by": "generation"}
    facts = {k: getattr(built, k, None) for k in FACTS}
    return {"error": None, "facts": {k: v.value if isinstance(v, enum.Enum) else v for k, v in facts.items()}}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def rollout_generation_error(built) -> str | None:
    """What transformers says of the rollouts' generation settings, built as TRL's group-sampling trainers build
    them (their own sampling fields, then generation_kwargs over them) and run for one token on a throwaway
    one-layer model: a value transformers refuses (top_k: -1) is named now, not at the first rollout."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    own = {k: getattr(built, k) for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
           if getattr(built, k, None) is not None}
    kwargs = {**own, **(getattr(built, "generation_kwargs", None) or {}), "do_sample": True, "max_new_tokens": 1}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = GenerationConfig(**kwargs, pad_token_id=0, eos_token_id=1)
            model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16,
                                                 num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1))
            model.generate(torch.tensor([[2, 3]]), attention_mask=torch.ones(1, 2, dtype=torch.long),
                           generation_config=config)
    except (TypeError, ValueError) as exc:
        return _first_line(exc)
    return None
