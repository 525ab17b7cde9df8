rule prep_sft:
    """Format-teaching SFT on the small subset, from the base model."""
    input:
        unpack(sft_inputs("prep_sft")),
    output:
        model=directory("results/{experiment}/prep_sft/model"),
        log_history="results/{experiment}/prep_sft/log_history.json",
    params:
        job=lambda w: as_arg(CFG.sft_job(w.experiment, "prep_sft")),
        checkpoints=lambda w: f"results/{w.experiment}/prep_sft/checkpoints",
        targets=targets_flag,
        launch=launch("prep_sft"),
    threads: workflow.cores
    resources:
        gpu=gpus("prep_sft"),
    conda:
        CONDA_ENV
    log:
        "results/logs/{experiment}/prep_sft.log",
    benchmark:
        "results/benchmarks/{experiment}/prep_sft.tsv"
    shell:
        "{params.launch} -m gsm_pipeline.train_sft --config {params.job} --parent {input.parent:q} --data {input.data:q} "
        "--out {output.model:q} --checkpoints {params.checkpoints:q} --log-history {output.log_history:q} "
        "{params.targets} --threads {threads} > {log:q} 2>&1"


use rule prep_sft as full_sft with:
    input:
        unpack(sft_inputs("full_sft")),
    output:
        model=directory("results/{experiment}/full_sft/model"),
        log_history="results/{experiment}/full_sft/log_history.json",
    params:
        job=lambda w: as_arg(CFG.sft_job(w.experiment, "full_sft")),
        checkpoints=lambda w: f"results/{w.experiment}/full_sft/checkpoints",
        targets=targets_flag,
        launch=launch("full_sft"),
    resources:
        gpu=gpus("full_sft"),
    log:
        "results/logs/{experiment}/full_sft.log",
    benchmark:
        "results/benchmarks/{experiment}/full_sft.tsv"
