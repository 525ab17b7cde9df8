rule grpo:
    """The RL stage (the row's method: GRPO or RLOO) with the row's reward set, from prep SFT (or full SFT, per
    experiment); {chain} names the training chain."""
    input:
        unpack(training_inputs("grpo")),
    output:
        model=directory("results/grpo-{chain}/model"),
        log_history="results/grpo-{chain}/log_history.json",
    params:
        job=training_job("grpo"),
        checkpoints=checkpoints_dir,
        launch=launch("grpo"),
    threads: all_cores
    resources:
        gpu=gpus("grpo"),
        slurm_partition=partition(gpus("grpo")),
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
