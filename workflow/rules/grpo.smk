rule grpo:
    """GRPO with the experiment's reward set, from prep SFT (or full SFT, per experiment); {chain} names the training chain."""
    input:
        parent=lambda w: model_dir(experiment_of("grpo", w), parent_stage(experiment_of("grpo", w), "grpo")),
        data="results/data/grpo.jsonl",
        code=code("train_grpo"),
    output:
        model=directory("results/grpo-{chain}/model"),
        log_history="results/grpo-{chain}/log_history.json",
    params:
        job=lambda w: as_arg(CFG.grpo_job(experiment_of("grpo", w))),
        checkpoints=lambda w, output: str(Path(output.model).parent / "checkpoints"),
        launch=launch("grpo"),
    threads: workflow.cores
    resources:
        gpu=gpus("grpo"),
    conda:
        CONDA_ENV
    log:
        "results/logs/grpo-{chain}.log",
    benchmark:
        "results/benchmarks/grpo-{chain}.tsv"
    shell:
        "{params.launch} -m gsm_pipeline.jobs.train_grpo --config {params.job} --parent {input.parent:q} --data {input.data:q} "
        "--out {output.model:q} --checkpoints {params.checkpoints:q} --log-history {output.log_history:q} "
        "--threads {threads} > {log:q} 2>&1"
