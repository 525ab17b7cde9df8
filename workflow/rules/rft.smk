rule rft:
    """Rejection-sampling fine-tuning: samples of the RL questions from prep SFT, the correct and distinct ones kept,
    then SFT on them. {chain} names the training chain."""
    input:
        unpack(training_inputs("rft")),
    output:
        model=directory("results/rft-{chain}/model"),
        log_history="results/rft-{chain}/log_history.json",
    params:
        job=training_job("rft"),
        checkpoints=checkpoints_dir,
        targets=targets_flag,
        launch=launch("rft"),
    threads: all_cores
    resources:
        gpu=gpus("rft"),
        slurm_partition=partition(gpus("rft")),
    conda:
        CONDA_ENV
    log:
        "results/logs/rft-{chain}.log",
    benchmark:
        "results/benchmarks/rft-{chain}.tsv"
    shell:
        "{params.launch} -m gsm_pipeline.jobs.train_rft --config {params.job} --parent {input.parent:q} --data {input.data:q} "
        "--out {output.model:q} --checkpoints {params.checkpoints:q} --log-history {output.log_history:q} "
        "{params.targets} --threads {threads} > {log:q} 2>&1"
