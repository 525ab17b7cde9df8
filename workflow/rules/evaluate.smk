rule evaluate:
    """Greedy evaluation of one model on one test set. {run} is base/<prompt> or <experiment>/<stage>."""
    input:
        unpack(eval_inputs),
    output:
        predictions="results/{run}/eval/{testset}/predictions.jsonl",
        samples="results/{run}/eval/{testset}/samples.jsonl",
        metrics="results/{run}/eval/{testset}/metrics.json",
        calibration="results/{run}/eval/{testset}/calibration.csv",
    params:
        job=lambda w: as_arg(CFG.eval_job(eval_params(w)["prompt"])),
        meta=lambda w: as_arg({**eval_params(w)["meta"], "run": w.run, "testset": w.testset}),
        out=lambda w, output: str(Path(output.metrics).parent),
    threads: workflow.cores
    resources:
        gpu=CFG.evaluation.gpus,
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/{run}/{testset}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}/{testset}.tsv"
    shell:
        "python -m gsm_pipeline.evaluate --config {params.job} --meta {params.meta} --model {input.model} "
        "--data {input.data} --out {params.out} --threads {threads} > {log} 2>&1"


rule evaluations:
    """Target: every evaluation (base and each trained stage), without the report."""
    input:
        eval_outputs("metrics.json"),
