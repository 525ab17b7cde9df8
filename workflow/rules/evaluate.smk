rule evaluate:
    """Greedy evaluation of one model on one test set. {run} is base, <stage>-<chain>, or <stage>-<chain>/step-N
    (a learning-curve point)."""
    input:
        unpack(eval_inputs),
    output:
        predictions="results/{run}/eval/{prompt}/{testset}/predictions.jsonl",
        samples="results/{run}/eval/{prompt}/{testset}/samples.jsonl",
        metrics="results/{run}/eval/{prompt}/{testset}/metrics.json",
        calibration="results/{run}/eval/{prompt}/{testset}/calibration.csv",
    params:
        job=eval_job,
        meta=eval_meta,
        out=output_folder,
        model=eval_model,
        reference=reference_flag,
    threads: all_cores
    resources:
        gpu=CFG.evaluation.gpus,
        slurm_partition=partition(CFG.evaluation.gpus),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/{run}/{prompt}/{testset}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}/{prompt}/{testset}.tsv"
    shell:
        "python -m gsm_pipeline.jobs.evaluate --config {params.job} --meta {params.meta} --model {params.model:q} "
        "--data {input.data:q} --fewshot {input.fewshot:q} {params.reference} --out {params.out:q} --threads {threads} "
        "> {log:q} 2>&1"


rule evaluations:
    """Target: every evaluation (base and each trained stage), without the report."""
    input:
        eval_outputs("metrics.json"),
