rule grpo:
    """GRPO with the experiment's reward set, from prep SFT (or full SFT, per experiment)."""
    input:
        parent=lambda w: model_dir(w.experiment, parent_stage(w.experiment, "grpo")),
        data="results/data/grpo.jsonl",
        code=code("train_grpo"),
    output:
        model=directory("results/{experiment}/grpo/model"),
        log_history="results/{experiment}/grpo/log_history.json",
    params:
        job=lambda w: as_arg(CFG.grpo_job(w.experiment)),
        checkpoints=lambda w: f"results/{w.experiment}/grpo/checkpoints",
        launch=launch("grpo"),
    threads: workflow.cores
    resources:
        gpu=gpus("grpo"),
    conda:
        CONDA_ENV
    log:
        "results/logs/{experiment}/grpo.log",
    benchmark:
        "results/benchmarks/{experiment}/grpo.tsv"
    shell:
        "{params.launch} -m gsm_pipeline.train_grpo --config {params.job} --parent {input.parent:q} --data {input.data:q} "
        "--out {output.model:q} --checkpoints {params.checkpoints:q} --log-history {output.log_history:q} "
        "--threads {threads} > {log:q} 2>&1"
