"""What a job would refuse when it starts, refused before any job runs: common.smk runs `preflight` at every
Snakemake invocation (the dry-run included) and `gsm-pipeline validate` runs it too. Snakemake side only.

For each stage folder the config trains, the job's own TRL and PEFT configs are built as the job will build them,
with the processes the stage launches (`training.arguments`), and the stage's length is counted from what TRL
resolved (`training.steps`): learning-curve steps and checkpoint steps that do not fit are refused here rather
than at train begin, after the stages before it have trained. The config model (`config.py`) has already checked
each key on its own; this checks what only the whole job, built, can tell.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .config import PipelineConfig
from .errors import ConfigError
from .layout import model_dir, runs, teacher_dir
from .prompts import prompt_key
from .settings.training import TrainingJob
from .stages import STAGES
from .training.arguments import planned_config
from .training.steps import StageLength, stage_length


@dataclass(frozen=True)
class PlannedStage:
    """One stage folder as the workflow plans it: what its rule reads (common.smk indexes these by wildcard)."""
    run: str  # <stage>-<chain>
    experiment: str  # the first row training it (every row sharing it has the same job)
    stage: str
    job: TrainingJob
    parent_model: str  # the model folder it starts from
    reads: dict[str, str]  # the files its job reads besides parent and data, by flag (TrainingJob.reads)
    rows: int  # its data split's rows: the task carves exactly data.<stage>_size (or prepare_data stops)
    facts: dict[str, Any] | None  # what TRL resolved (job.length_facts completes it); None without TRL
    length: StageLength | None  # None where the config does not determine it (packing, no TRL)


def key_path(cfg: PipelineConfig, name: str, stage: str, key: str) -> str:
    """Where a stage setting (`num_generations`, `training_args.max_steps`) is written: the row's override, or the
    stages section it inherits."""
    node: Any = cfg.experiments[name].overrides.get(stage, {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return f"stages.{stage}.{key}"
        node = node[part]
    return f"experiments.{name}.overrides.{stage}.{key}"


def split_size(cfg: PipelineConfig, split: str) -> int:
    return getattr(cfg.data, f"{split}_size")


def input_path(cfg: PipelineConfig, name: str, job: TrainingJob, ref: str) -> str:
    """The file a job's `reads()` entry names: its prompt's confidence targets, a data split, a stage of the row
    (its model folder), or a model source (a local folder as it is; a hub id fetched under resources/)."""
    kind, _, value = ref.partition(":")
    if ref == "targets":
        return f"results/confidence_targets/{prompt_key(job.prompt)}.jsonl"
    if kind == "split":
        return f"results/data/{value}.jsonl"
    if kind == "stage":
        return model_dir(cfg, name, value)
    if kind == "model":
        return teacher_dir(value)
    return ref


def planned_stages(cfg: PipelineConfig) -> list[PlannedStage]:
    """Each stage folder once, its job built and checked against TRL and PEFT, and its length counted."""
    out: dict[str, PlannedStage] = {}
    for (name, stage), run in runs(cfg).items():
        if run in out:
            continue
        job = cfg.stage_job(name, stage)
        facts = job.length_facts(planned_config(job, lambda key, n=name, s=stage: key_path(cfg, n, s, key)))
        rows = split_size(cfg, STAGES[stage].data)
        trained, how = job.trained_rows(rows, lambda split: split_size(cfg, split))
        length = stage_length(facts, trained, job.process_count(), rl=job.generates_in_groups(),
                              bound=bool(how)) if facts else None
        if how and length:
            length = replace(length, how=f"{how} = {length.how}")
        parent = model_dir(cfg, name, cfg.experiment(name).parent_of(stage))
        reads = {flag: input_path(cfg, name, job, ref) for flag, ref in job.reads().items()}
        out[run] = PlannedStage(run, name, stage, job, parent, reads, rows, facts, length)
    return list(out.values())


def check_lengths(cfg: PipelineConfig, planned: list[PlannedStage]) -> None:
    """Curve steps before the stage's last step; explicit checkpoint steps that come at all; RL prompts enough for
    one generation batch."""
    for p in planned:
        if p.length is None:
            continue
        if p.job.generates_in_groups() and p.rows < p.facts["generation_batch_size"] // p.facts["num_generations"]:
            raise ConfigError(f"data.{STAGES[p.stage].data}_size: {p.rows} prompts are fewer than one generation "
                              f"batch needs ({p.length.how})")
        late = [s for s in p.job.curve_steps() if s >= p.length.steps]
        curve, saves = (key_path(cfg, p.experiment, p.stage, key)
                        for key in ("eval_checkpoints", "training_args.save_steps"))
        if late:
            raise ConfigError(f"{curve}: step {late[0]} is not before the stage's last step "
                              f"({p.length.words()}), which the stage's own evaluation covers")
        save = p.job.training_args.get("save_steps")
        if p.facts["save_strategy"] == "steps" and isinstance(save, int) and save > p.length.steps:
            raise ConfigError(f"{saves}: {save} is past the stage's last step ({p.length.words()}), so it would "
                              f"never checkpoint and a crash would restart it from step 0; use at most "
                              f"{p.length.steps}, or save_strategy: 'no'")


def check_paged_caches(cfg: PipelineConfig, planned: list[PlannedStage]) -> None:
    """With a GPU kind stated (`gpu:`) and the model's size known: every continuous-batching call on a GPU (an
    evaluation's, the confidence targets', an RFT stage's sampling) holds the weights and its paged cache at full
    length within the share of the GPU's memory the library itself would take."""
    if cfg.gpu is None:
        return
    from .cost import tables
    from .cost.estimate import model, paged_cache_gb

    try:
        m = model(cfg.model.source, cfg, None)  # its shape only: the cache needs no throughput rates
    except ConfigError:
        return  # a model the table does not know: its job finds out
    gpu = tables.GPUS[cfg.gpu]
    prompt = tables.LENGTHS.get(cfg.data.source, tables.LENGTHS["jsonl"]).prompt_max  # the engine takes these first
    calls = [("evaluation.batch_size", cfg.evaluation.batch_size, cfg.evaluation.max_new_tokens, cfg.evaluation.gpus)]
    if any("confidence_targets" in p.reads for p in planned):
        calls.append(("confidence.batch_size", cfg.confidence.batch_size, cfg.confidence.max_new_tokens,
                      cfg.evaluation.gpus))
    calls += [(key_path(cfg, p.experiment, p.stage, "batch_size"), p.job.batch_size, p.job.max_new_tokens, p.job.gpus)
              for p in planned if STAGES[p.stage].kind == "rft"]
    room = tables.CACHE_SHARE * gpu.memory_gb - m.weights_gb
    for key, batch, max_new, gpus in calls:
        cache = paged_cache_gb(m, batch, prompt, max_new)
        if gpus and cache > room:
            fit = int(batch * room / cache)
            raise ConfigError(f"{key}: {batch} requests' paged KV cache at full length ({prompt}-token prompts, the "
                              f"longest, + {max_new} new tokens) takes {cache:.0f} GB, which with the "
                              f"{m.weights_gb:.1f} GB of weights is more than {tables.CACHE_SHARE:.0%} of the "
                              f"{cfg.gpu}'s {gpu.memory_gb:g} GB; at most {fit} fit")


def preflight(cfg: PipelineConfig) -> list[PlannedStage]:
    """Everything the jobs of this config would refuse when they start; the planned stages for printing."""
    planned = planned_stages(cfg)
    check_lengths(cfg, planned)
    check_paged_caches(cfg, planned)
    return planned


def describe(planned: list[PlannedStage]) -> list[str]:
    """Per stage folder, the effective training settings and step count (what a preset inherits shows here)."""
    lines = []
    for p in planned:
        j, f = p.job, p.facts or {}
        settings = {"launcher": j.launcher, "processes": j.process_count(),
                    "gradient_checkpointing": j.gradient_checkpointing, **j.training_args}
        if f:
            settings.update({k: f[k] for k in ("per_device_train_batch_size", "gradient_accumulation_steps")})
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        steps = (f"{'at most ' if p.length.bound else ''}{p.length.steps} steps ({p.length.how})" if p.length
                 else "steps unknown before the job (packed rows, or TRL not installed here)")
        lines.append(f"{p.run} ({p.experiment} {p.stage}): {steps}; {shown}")
    return lines
