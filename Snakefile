# GSM8K post-training pipeline: data -> model -> base eval (-> confidence targets) -> the training stages of stages.py -> evals -> report.
# Usage: snakemake --cores all            (build results/report/index.html for config.yaml)
#        snakemake -n                     (dry-run: list every job and why it runs)
#        snakemake --profile workflow/profiles/slurm   (submit to Slurm)
from snakemake.utils import min_version

min_version("9.0")


# config.yaml is read in common.smk (strictly: a key given twice or a binary file is one line naming the file),
# then --configfile files and --config values on top, as Snakemake's configfile directive would.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/confidence.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


# Cheap or network-bound jobs run where Snakemake runs (the login node), never as cluster jobs.
localrules:
    all,
    evaluations,
    prepare_data,
    fetch_model,
    fetch_teacher,
    report,
    example_report,


rule all:
    default_target: True
    input:
        rules.report.output,
