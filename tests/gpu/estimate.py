"""The GPU proof's parts priced before they run, by `gsm-pipeline cost`'s arithmetic and throughput table
(`gsm_pipeline.cost`), each beside the allowance it runs under on a GPU.

    python tests/gpu/estimate.py            # each part's seconds on an H100, fast and slow end, and its allowance

`smoke` and `dag` are the cost command's plan of the proof's own config (every job on the GPU), scheduled on the
proof's 8 job slots, after Snakemake's planning and the CPU jobs before the first GPU job (the model's copy and
the data, side by side) and, for `dag`, before the report after the last. Two approximations: the tiny model's
jobs are priced as if each had the GPU to itself (their time is start-up and kernel launches, which leave one GPU
mostly idle), and as a size class's model whose rows are the default's short sums (the tiny model has 2 layers,
its rows a longer prompt): both err slow. `training` and `generation` are the benchmarks' workloads as prove.py
passes them (`prove.BENCH`): one process's start, then each variant's trainer build and its updates (SFT steps;
GRPO generation rounds through continuous batching, as on a node without vLLM, or `model.generate`), or each
batch size's calls to continuous batching. The CPU-side figures (`CPU_SIDE`) were measured in the CPU proof;
everything on the GPU comes from the cost table.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "workflow"), str(REPO / "tests"), str(REPO / "tests/bench"), str(REPO / "tests/gpu")]

from gsm_pipeline.cost import tables  # noqa: E402
from gsm_pipeline.cost.estimate import Model, Span, decode_s, forward_s, rates_for, schedule, start_s, train_s  # noqa: E402, E501

GPU = "h100"
SLOTS = 8  # prove.run_dag's cores, one thread a job
# Seconds on the CPU side, measured in the CPU proof (prove.sh OUT --cpu) on the 2-core development machine, AMD
# EPYC with AVX2 (no AVX-512; tests/bench/README.md): the fast end the measured figure (a mean where several), the
# slow end twice the largest.
CPU_SIDE = {
    "snakemake": Span(5, 10),  # planning the proof's DAG (each stage's TRL config resolved) until its first job: 5 s
    "cpu_job": Span(9, 18),  # fetch_model (a local folder copied as safetensors) 9 s, the report 8 s
    "trainer": Span(1.3, 6.2),  # a benchmark variant's trainer built on 1,024 GSM8K rows: 0.3-3.1 s
}
_ARCH = tables.ARCHITECTURES["HuggingFaceTB/SmolLM2-135M-Instruct"]
SMOLLM2 = Model(_ARCH, 2, rates_for(GPU, _ARCH.parameters))  # the benchmarks' shape, in bf16
LENGTHS = tables.LENGTHS["reasoning_gym"]  # the proof's rows: short sums, as the default's


def proof_costs(dag, targets: list[str] | None = None):
    """The cost command's jobs for the proof's DAG (the ones `targets` needs, where given)."""
    from gsm_pipeline.cost.plan import plan
    from gsm_pipeline.validate import merged_configs

    *_, (_, cfg, _) = merged_configs([str(dag.root / "config.yaml"), str(dag.root / "tiny.yaml")])
    costs = plan(cfg, GPU, lengths=LENGTHS)
    if targets is None:
        return costs
    by_job, needed = {c.job: c for c in costs}, set()

    def need(job: str) -> None:
        if job in by_job and job not in needed:
            needed.add(job)
            for a in by_job[job].after:
                need(a)
    for target in targets:
        need(target.removesuffix("/model"))
    return [c for c in costs if c.job in needed]


def dag_s(costs, end: int, report: bool) -> float:
    side = CPU_SIDE["snakemake"].at(end) + CPU_SIDE["cpu_job"].at(end) * (2 if report else 1)
    return side + schedule(costs, end, SLOTS)[0]


def training_s(end: int, options: dict) -> float:
    """bench_training.py: one process, then per variant a trainer built and SFT's updates + 1 (a warm-up) on GSM8K
    rows (packed rows of 512 tokens where the variant packs), or GRPO's timed generation rounds after an untimed
    one, each a round's rollouts (continuous batching or a padded `model.generate`), their forward and backward, and
    the old log-probabilities' forward where a round spans several updates."""
    import bench_training as bench

    m, gsm = SMOLLM2, tables.LENGTHS["gsm8k"]
    updates, budget = options["updates"], options["completion-length"]
    seconds = start_s(m, end)
    for extra in [bench.SFT_VARIANTS[v] for v in options["variants"] if v in bench.SFT_VARIANTS]:
        rows = extra.get("per_device_train_batch_size", 8) * (updates + 1)
        row = 512 if extra.get("packing") else gsm.prompt + gsm.target
        seconds += CPU_SIDE["trainer"].at(end) + train_s(m, end, rows * row, updates + 1, "single")
    for extra in [bench.GRPO_VARIANTS[v] for v in options["variants"] if v in bench.GRPO_VARIANTS]:
        per_device = extra.get("per_device_train_batch_size", 8)
        generated = extra.get("generation_batch_size", per_device)  # a round's rollouts
        micro = generated // per_device
        rounds = 1 + math.ceil(updates / micro)  # whole rounds, after an untimed one
        tokens = generated * (gsm.prompt + budget)
        # one call a round, every row to the budget: continuous batching (`ours` on a node without vLLM) and a
        # padded `model.generate` alike
        decode = decode_s(m, end, generated, generated, budget, budget)
        update = train_s(m, end, tokens, micro, "single") + (forward_s(m, end, tokens) if micro > 1 else 0)
        seconds += CPU_SIDE["trainer"].at(end) + rounds * (decode + update)
    return seconds


def generation_s(end: int, options: dict) -> float:
    """bench_generation.py: one process (the model built on the GPU), then greedy continuous batching of every
    problem at each batch size, every completion the full budget (EOS off)."""
    m, budget = SMOLLM2, options["max-new-tokens"]
    return start_s(m, end) + sum(decode_s(m, end, options["problems"], size, budget, budget)
                                 for size in options["batch-size"])


def estimates(work: Path) -> dict[str, Span]:
    """Each part's seconds on an H100 (fast, slow), as prove.py runs it on a GPU."""
    import prove

    from gsm_pipeline.layout import model_dir

    dag = prove.new_dag(work, gpu=True)
    smoke = proof_costs(dag, [model_dir(dag.config(), "tagged", "prep_sft")])
    every = proof_costs(dag)
    return {
        "smoke": Span(*(dag_s(smoke, e, report=False) for e in (0, 1))),
        "dag": Span(*(dag_s(every, e, report=True) for e in (0, 1))),
        "training": Span(*(training_s(e, prove.BENCH["training"]) for e in (0, 1))),
        "generation": Span(*(generation_s(e, prove.BENCH["generation"]) for e in (0, 1))),
    }


def main() -> None:
    import argparse
    import tempfile

    import prove

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    with tempfile.TemporaryDirectory() as work:
        parts = estimates(Path(work))
    print(f"| part | estimate on an {GPU.upper()}, seconds | allowance, seconds |\n| --- | --- | --- |")
    for name, span in parts.items():
        print(f"| `{name}` | {span.fast:.0f}-{span.slow:.0f} | {prove.ALLOWANCE[name]} |")


if __name__ == "__main__":
    main()
