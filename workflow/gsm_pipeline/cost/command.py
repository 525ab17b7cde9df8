"""`gsm-pipeline cost CONFIG.yaml [PRESET.yaml ...] [--gpu KIND]`: each GPU job of the plan with the tokens it
trains on and generates, its estimated GPU-hours and peak memory; the plan's total GPU-hours and longest chain."""
from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace

from ..errors import ConfigError, run_main
from ..preflight import planned_stages
from ..validate import merged_configs
from . import tables
from .estimate import JobCost, Span, architecture, schedule
from .plan import downloads, plan


def count(tokens: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= size:
            return f"{tokens / size:.1f}{unit}"
    return f"{tokens:.0f}" if tokens else "-"


def hours(span: Span | None) -> str:
    return "-" if span is None else f"{span.fast:.2f}-{span.slow:.2f}"


def total(costs: list[JobCost]) -> Span | None:
    spans = [c.gpu_hours for c in costs if c.gpu_hours is not None]
    return Span(sum(s.fast for s in spans), sum(s.slow for s in spans)) if spans else None


def lines(costs: list[JobCost], gpu: str | None) -> list[str]:
    width = max(len(c.job) for c in costs)
    memory = tables.GPUS[gpu].memory_gb if gpu else None
    out = [f"{'':<{width}}        {'tokens':>8}  {'tokens':>9}",
           f"{'job':<{width}}  GPUs  {'trained':>8}  {'generated':>9}  {'GPU-hours':>11}  {'peak GB/GPU':>11}"]
    for c in costs:
        over = " (!)" if memory and c.memory_gb and c.memory_gb > memory else ""
        peak = "-" if c.memory_gb is None else f"{c.memory_gb:.1f}{over}"
        out.append(f"{c.job:<{width}}  {c.gpus:>4}  {count(c.trained):>8}  {count(c.generated):>9}  "
                   f"{hours(c.gpu_hours):>11}  {peak:>11}" + ("  done" if c.finished else ""))
    if any(line.endswith("(!)") for line in out):
        out.append(f"(!): more than the {gpu}'s {memory:g} GB")
    kinds: dict[str, list[JobCost]] = defaultdict(list)
    for c in costs:
        kinds[c.kind].append(c)
    out.append("by rule:")
    out += [f"  {kind}: {len(group)} job{'s' if len(group) > 1 else ''}"
            + (f", {hours(total(group))} GPU-hours" if total(group) else "") for kind, group in kinds.items()]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Estimate a config's plan before running it: for each job on a GPU, the tokens it trains on and "
                    "generates (sampled completions counted at their budget: an upper bound), its GPU-hours (a range: "
                    "every rate of the throughput table at its fast, then its slow end) and its peak memory per GPU; "
                    "then the plan's total, its longest chain of jobs and its downloads. In a run's folder, jobs whose "
                    "outputs exist are marked done and the GPU-hours left are printed. Estimates, not measurements.")
    parser.add_argument("configs", nargs="*", help="YAML files, merged left to right as --configfile does "
                                                   "(none: config.yaml)")
    parser.add_argument("--gpu", choices=sorted(tables.GPUS), help="the GPU kind (default: the config's gpu key)")
    args = parser.parse_args(argv)
    *_, (_, cfg, _) = merged_configs(args.configs or ["config.yaml"])
    stages = planned_stages(cfg)  # once, for the whole merge
    gpu = args.gpu or cfg.gpu
    costs = plan(cfg, gpu, stages)
    if gpu is None and any(c.gpus for c in costs):
        raise ConfigError("gpu: the config's jobs ask for GPUs but name no GPU kind; set gpu: (one of "
                          f"{', '.join(tables.GPUS)}) or pass --gpu")
    arch = architecture(cfg.model.source)
    on_gpu = gpu and any(c.gpus for c in costs)
    where = f"on {gpu} ({tables.GPUS[gpu].memory_gb:g} GB)" if on_gpu else "on the CPU"
    print(f"{' + '.join(args.configs or ['config.yaml'])} {where}: {cfg.model.source}, "
          f"{arch.parameters / 1e9:.2f}B parameters")
    print("\n".join(lines(costs, gpu)))
    spent = total(costs)
    if spent is None:
        print("GPU-hours: none (every job runs on the CPU; docs/measurements.md has CPU times)")
    else:
        print(f"total: {hours(spent)} GPU-hours on {gpu} (GPUs x wall time; the range: every rate at its fast, "
              "then its slow end)")
        # a job whose outputs exist costs nothing more; Snakemake may still rerun one whose settings or code changed
        done = {c.job for c in costs if c.finished}
        left = [replace(c, seconds=None) if c.job in done else c for c in costs]
        if done:
            print(f"left to run: {hours(total(left) or Span(0, 0))} GPU-hours ({len(done)} jobs "
                  "done: their outputs exist; `snakemake -n` says which a changed setting or code would rerun)")
        (fast, _), (slow, chain) = schedule(left, 0), schedule(left, 1)
        print(f"longest chain: {fast / 3600:.2f}-{slow / 3600:.2f} hours of wall time with a GPU free for every job "
              f"that can start (at the slow end: {' -> '.join(j for j in chain if j not in done)})")
    fetched = downloads(cfg, stages)
    if fetched:
        print("downloads, once: " + ", ".join(f"{source} {gb:.1f} GB" for source, gb in fetched.items()))
    lengths = tables.LENGTHS[cfg.data.source]
    print(f"token lengths: prompt {lengths.prompt} (longest {lengths.prompt_max}), reference completion "
          f"{lengths.target} (longest {lengths.target_max}): {lengths.source}; sampled completions counted at their "
          "budget")
    print("rates and their sources: gsm_pipeline/cost/tables.py (docs/scale-out.md)")


if __name__ == "__main__":
    run_main(main)
