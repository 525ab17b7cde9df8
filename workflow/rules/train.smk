# One rule per training stage of the stage table (gsm_pipeline/stages.py), all from this one template: the stage's
# kind names its job module; its parent, data split and what else it reads come from the planned job (common.smk).
for STAGE, ENTRY in STAGES.items():

    rule:
        name:
            STAGE
        input:
            unpack(training_inputs(STAGE)),
        output:
            model=directory(f"results/{STAGE}-{{chain}}/model"),
            log_history=f"results/{STAGE}-{{chain}}/log_history.json",
        params:
            module=f"gsm_pipeline.jobs.{ENTRY.entry.module}",
            job=training_job(STAGE),
            checkpoints=checkpoints_dir,
            reads=reads_flags,
            launch=launch(STAGE),
        threads: all_cores
        resources:
            gpu=gpus(STAGE),
            slurm_partition=partition(gpus(STAGE)),
        conda:
            CONDA_ENV
        log:
            f"results/logs/{STAGE}-{{chain}}.log",
        benchmark:
            f"results/benchmarks/{STAGE}-{{chain}}.tsv"
        shell:
            "{params.launch} -m {params.module} --config {params.job} --parent {input.parent:q} "
            "--data {input.data:q} --out {output.model:q} --checkpoints {params.checkpoints:q} "
            "--log-history {output.log_history:q} {params.reads} --threads {threads} > {log:q} 2>&1"
