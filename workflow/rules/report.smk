rule report:
    """comparison.csv and index.html across every experiment, stage and test set."""
    input:
        metrics=eval_outputs("metrics.json"),
        predictions=eval_outputs("predictions.jsonl"),
        samples=eval_outputs("samples.jsonl"),
        calibration=eval_outputs("calibration.csv"),
        logs=training_logs(),
        code=[*code("report", task=False), REPORT_TEMPLATE],
    output:
        # what `snakemake --report` shows beside Snakemake's own provenance
        csv=report("results/report/comparison.csv", category="Results", labels={"table": "comparison"},
                   caption="../report/comparison.rst"),
        html=report("results/report/index.html", category="Results", labels={"page": "the report"},
                    caption="../report/index.rst"),
        accuracy=report("results/report/accuracy.png", category="Results", labels={"figure": "accuracy by stage"},
                        caption="../report/accuracy.rst"),
        per_example="results/report/per_example.csv",
        summary="results/report/summary.json",
    params:
        job=as_arg(layout.report_job(CFG)),
    conda:
        CONDA_ENV
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    shell:
        "python -m gsm_pipeline.jobs.report --metrics {input.metrics:q} --logs {input.logs:q} --config {params.job} "
        "--out results/report > {log:q} 2>&1"


rule example_report:
    """The example report README links (docs/example-report/): this config's report page with its figures and
    tables, copied out of results/ so that it is part of the repository."""
    input:
        rules.report.output,
    output:
        directory("docs/example-report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/example_report.log",
    benchmark:
        "results/benchmarks/example_report.tsv"
    shell:
        "mkdir -p {output:q} && cp results/report/index.html results/report/*.png results/report/*.csv "
        "results/report/*.json {output:q}/ > {log:q} 2>&1"
