"""Each GPU job of a config's plan, before it runs: the tokens it trains on and generates, and by the throughput table
(`tables.py`) its wall time, GPU-hours and peak memory on one GPU kind.

Counts follow the jobs' own arithmetic: a stage's optimizer steps as the preflight counts them from TRL's resolved
config, its generation rounds as TRL hands them out, each evaluation's completions by the samples its folder draws
(`layout.eval_samples`). Tokens generated are counted at the budget (every completion to its `max_new_tokens`): an
upper bound that the config fixes exactly. Tokens trained are prompt and completion tokens through forward and
backward, a prompt at the task's mean length (`tables.LENGTHS`), a reference completion at its mean and a sampled one
at its budget. Time is a (fast, slow) range: the fast end with every rate's fast end and sampled completions as long
as the task's reference ones, the slow end with the slow rates and completions at the budget. A call to continuous
batching lasts as long as its longest completion (the budget) at the launch-bound step time, or as its tokens take
at the GPU's full decode rate, whichever is longer; a padded rollout decodes every row to the budget. Not
modelled: a reward model's scoring (evaluation.reward_model), LoRA's smaller optimizer state (counted as full
fine-tuning), RL rollouts through continuous batching (counted as padded).
"""
from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PipelineConfig
from ..errors import ConfigError
from . import tables
from .tables import Architecture, Lengths, Rates, Span


@dataclass
class JobCost:
    job: str  # as the dry-run names its outputs: the stage folder, the evaluation folder, the targets file
    kind: str  # the rule
    gpus: int
    trained: float = 0.0  # tokens through forward and backward
    generated: float = 0.0  # tokens generated, every completion at its budget (at most)
    completions: int = 0
    seconds: Span | None = None  # wall time on the GPU kind; None for a job on the CPU
    memory_gb: float | None = None  # peak on one of its GPUs
    after: list[str] = field(default_factory=list)  # the jobs (of this plan) it waits for
    output: str = ""  # the file its job writes last: where it exists, the job has run

    @property
    def finished(self) -> bool:
        return bool(self.output) and Path(self.output).is_file()

    @property
    def gpu_hours(self) -> Span | None:
        if self.seconds is None:
            return None
        return Span(self.gpus * self.seconds.fast / 3600, self.gpus * self.seconds.slow / 3600)


@dataclass(frozen=True)
class Model:
    arch: Architecture
    dtype_bytes: int
    rates: Rates | None

    @property
    def weights_gb(self) -> float:
        return self.arch.parameters * self.dtype_bytes / 1e9


def schedule(costs: list[JobCost], end: int, slots: int | None = None) -> tuple[float, list[str]]:
    """The plan's wall time at one end of the rates, and its critical chain: each job starts, in the plan's order
    (every job after those it waits for), once they have finished and one of `slots` GPUs is free; with no limit
    (a GPU free for every job that can start) the wall time is its longest chain of jobs each waiting for the one
    before. A job on the CPU counts its `seconds` where it has them."""
    by_job = {c.job: c for c in costs}
    finish: dict[str, float] = {}
    chain: dict[str, list[str]] = {}
    free = [0.0] * min(slots or len(costs), len(costs))  # when each GPU is next free

    def start(c: JobCost) -> None:
        if c.job in finish:
            return
        waits = [a for a in c.after if a in by_job]
        for a in waits:
            start(by_job[a])
        last = max(waits, key=finish.__getitem__, default=None)
        ready = finish[last] if last else 0.0
        # the GPU freed last before the job is ready (or the first to come free): the others stay for jobs ready sooner
        slot = free.pop(max(bisect.bisect_right(free, ready) - 1, 0))
        finish[c.job] = max(ready, slot) + (c.seconds.at(end) if c.seconds else 0.0)
        bisect.insort(free, finish[c.job])
        chain[c.job] = [*(chain[last] if last and ready >= slot else []), c.job]
    for c in costs:
        start(c)
    last = max(finish, key=finish.__getitem__, default=None)
    return (finish[last], chain[last]) if last else (0.0, [])


def architecture(source: str) -> Architecture:
    """A model source's shape: a local model folder's own config.json and weights, else the table's row."""
    folder = Path(source)
    if (folder / "config.json").is_file():
        return read_architecture(folder)
    if source in tables.ARCHITECTURES:
        return tables.ARCHITECTURES[source]
    raise ConfigError(f"model.source {source!r}: its size is not in the cost table (cost/tables.py ARCHITECTURES) "
                      "and it is not a local model folder; fetch it (snakemake resources/model) and give that folder")


def read_architecture(folder: Path) -> Architecture:
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    parameters = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "np") as handle:
            parameters += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return Architecture(parameters, config["num_hidden_layers"], config["hidden_size"],
                        config.get("num_key_value_heads", heads), head_dim, config["vocab_size"],
                        f"{folder}/config.json and its weights")


def rates_for(gpu: str | None, parameters: float) -> Rates | None:
    if gpu is None:
        return None
    for row in tables.RATES[tables.GPUS[gpu].rates_as]:
        if parameters <= row.up_to:
            return row
    raise ConfigError(f"gpu {gpu}: the cost table has no rates for a model of {parameters / 1e9:.1f}B parameters")


def model(source: str, cfg: PipelineConfig, gpu: str | None) -> Model:
    arch = architecture(source)
    return Model(arch, 4 if cfg.model.dtype == "float32" else 2, rates_for(gpu, arch.parameters))


def paged_cache_gb(m: Model, requests: int, prompt: int, max_new: int) -> float:
    """generation/decoding.py's paged cache for one call: every request at full length, in whole pages."""
    pages = math.ceil((prompt + max_new) / tables.PAGE)
    return requests * pages * tables.PAGE * m.arch.kv_bytes_per_token(m.dtype_bytes) / 1e9


def decode_s(m: Model, end: int, requests: int, concurrency: int, budget: int, length: float) -> float:
    """Continuous batching, `concurrency` requests a call: each call as long as the longer of its longest
    completion at the launch-bound step time and its tokens at the full decode rate."""
    r = m.rates
    calls, rest = divmod(requests, concurrency)
    per_call = [concurrency] * calls + ([rest] if rest else [])
    launch = budget * r.decode_step_s.at(end)
    return sum(max(launch, n * length / r.decode_tok_s.at(end)) for n in per_call)


def forward_s(m: Model, end: int, tokens: float) -> float:
    return tokens / m.rates.forward_tok_s(end)


def start_s(m: Model, end: int, launcher: str = "single", processes: int = 1) -> float:
    """A job's seconds before its work: imports and CUDA, its weights read, its launcher's start, and the
    rendezvous of several processes."""
    rendezvous = tables.RENDEZVOUS_S.at(end) if processes > 1 else 0.0
    return (tables.START_S.at(end) + m.weights_gb / tables.LOAD_GB_S.at(end) + tables.LAUNCHER_START_S[launcher].at(end)
            + rendezvous)


def train_s(m: Model, end: int, tokens: float, micro_batches: int, launcher: str) -> float:
    """Forward and backward on one GPU: its tokens at the training rate, or, for micro-batches too small to fill
    the GPU, each at least three launch-bound steps (backward launches about twice the forward's kernels); what
    the launcher's communication leaves of it."""
    r = m.rates
    busy = max(tokens / r.train_tok_s.at(end), micro_batches * 3 * r.decode_step_s.at(end))
    return busy / tables.LAUNCHER_EFFICIENCY[launcher]


@dataclass(frozen=True)
class Plan:
    cfg: PipelineConfig
    gpu: str | None
    lengths: Lengths
    student: Model

    def length(self, end: int, budget: int) -> float:
        """A sampled completion's length at the fast (the task's reference answer) or the slow end (the budget)."""
        return min(budget, self.lengths.target) if end == 0 else budget

    def timed(self, cost: JobCost, seconds, launcher: str = "single", processes: int = 1) -> JobCost:
        """`seconds(end)`: the job's work at one end of the rates; the job's start is added."""
        if not cost.gpus:
            cost.memory_gb = None  # a job on the CPU
        elif self.student.rates is not None:
            cost.seconds = Span(*(start_s(self.student, e, launcher, processes) + seconds(e) for e in (0, 1)))
        return cost


def problems_in(cfg: PipelineConfig, testset: str) -> int:
    """Problems in a test set: data.test_size, or fewer where an extra test file has fewer rows (data.build_splits
    cuts each to test_size)."""
    path = cfg.data.extra_test_files.get(testset)
    if path and Path(path).is_file():
        return min(cfg.data.test_size, sum(1 for line in Path(path).read_text().splitlines() if line.strip()))
    return cfg.data.test_size

