rule prep_sft:
    """Format-teaching SFT on the small subset, from the base model. {chain} names the training chain."""
    input:
        unpack(training_inputs("prep_sft")),
    output:
        model=directory("results/prep_sft-{chain}/model"),
        log_history="results/prep_sft-{chain}/log_history.json",
    params:
        job=training_job("prep_sft"),
        checkpoints=checkpoints_dir,
        targets=targets_flag,
        launch=launch("prep_sft"),
    threads: all_cores
    resources:
        gpu=gpus("prep_sft"),
        slurm_partition=partition(gpus("prep_sft")),
    conda:
        CONDA_ENV
    log:
        "results/logs/prep_sft-{chain}.log",
    benchmark:
        "results/benchmarks/prep_sft-{chain}.tsv"
    shell:
        "{params.launch} -m gsm_pipeline.jobs.train_sft --config {params.job} --parent {input.parent:q} --data {input.data:q} "
        "--out {output.model:q} --checkpoints {params.checkpoints:q} --log-history {output.log_history:q} "
        "{params.targets} --threads {threads} > {log:q} 2>&1"


use rule prep_sft as full_sft with:
    input:
        unpack(training_inputs("full_sft")),
    output:
        model=directory("results/full_sft-{chain}/model"),
        log_history="results/full_sft-{chain}/log_history.json",
    params:
        job=training_job("full_sft"),
        checkpoints=checkpoints_dir,
        targets=targets_flag,
        launch=launch("full_sft"),
    resources:
        gpu=gpus("full_sft"),
        slurm_partition=partition(gpus("full_sft")),
    log:
        "results/logs/full_sft-{chain}.log",
    benchmark:
        "results/benchmarks/full_sft-{chain}.tsv"
