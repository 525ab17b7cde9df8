rule prepare_data:
    """Normalised train/RL/test rows from gsm_symbolic, GSM8K or local JSONL, shared by every experiment."""
    input:
        files=local_data_files(),
        code=code("prepare_data"),
    output:
        prep_sft="results/data/prep_sft.jsonl",
        full_sft="results/data/full_sft.jsonl",
        rl="results/data/rl.jsonl",
        fewshot="results/data/fewshot.jsonl",
        tests=expand("results/data/test/{testset}.jsonl", testset=TESTSETS),
        manifest="results/data/manifest.json",
    params:
        data=as_arg(CFG.data_job()),
    conda:
        CONDA_ENV
    log:
        "results/logs/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    shell:
        "python -m gsm_pipeline.jobs.prepare_data --config {params.data} --out results/data > {log:q} 2>&1"
