rule confidence_targets:
    """SFT confidence targets: the base model's (or confidence.model's) sampled accuracy per template."""
    input:
        model=confidence_model(),
        data=["results/data/prep_sft.jsonl", "results/data/full_sft.jsonl"],
        code=code("confidence_targets"),
    output:
        targets="results/confidence_targets/{prompt}.jsonl",
        summary="results/confidence_targets/{prompt}.summary.json",
    params:
        job=targets_job,
    threads: all_cores
    resources:
        gpu=CFG.evaluation.gpus,
        slurm_partition=partition(CFG.evaluation.gpus),
    conda:
        CONDA_ENV
    log:
        "results/logs/confidence_targets/{prompt}.log",
    benchmark:
        "results/benchmarks/confidence_targets/{prompt}.tsv"
    shell:
        "python -m gsm_pipeline.jobs.confidence_targets --config {params.job} --model {input.model:q} "
        "--data {input.data:q} --out {output.targets:q} --threads {threads} > {log:q} 2>&1"
