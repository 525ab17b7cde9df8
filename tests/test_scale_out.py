"""Scaling out is configuration: training rules launch through accelerate with the stage's config file
and one process per GPU, the Slurm profile dry-runs, and the workflow lints clean."""
import socket
import subprocess

import pytest

from conftest import REPO, Dag
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.launch import free_port

pytestmark = pytest.mark.dag  # starts Snakemake or a command in a subprocess


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    return Dag(tmp_path_factory.mktemp("scale"), {})


def shell_commands(dag, *args, configfile="tiny.yaml"):
    out = dag.snakemake("-n", "-p", "--forcerun", "prep_sft", "full_sft", "rl", *args, configfile=configfile).stdout
    return [line for line in out.splitlines() if "accelerate launch" in line]


def test_every_training_job_launches_through_accelerate_with_its_stage_config(dag):
    # 80 rows over 4 processes is 3 steps: checkpoint every 2 (the default's 8 would never come, and is refused)
    dag.write_config({"stages": {"full_sft": {"launcher": "zero3", "gpus": 4, "training_args": {"save_steps": 2}},
                                 "rl": {"launcher": "ddp", "gpus": 2}}}, "gpus.yaml")
    runs = {stage: dag.run("tagged", stage, "gpus.yaml") for stage in ("prep_sft", "full_sft", "rl")}
    lines = shell_commands(dag, f"results/{runs['rl']}/model", f"results/{runs['full_sft']}/model",
                           configfile="gpus.yaml")
    by_stage = {stage: next(line for line in lines if f"gsm_pipeline.jobs.{module}" in line
                            and f"--out results/{runs[stage]}/" in line)
                for stage, module in (("prep_sft", "train_sft"), ("full_sft", "train_sft"), ("rl", "train_rl"))}
    assert "--config_file envs/accelerate/single.yaml --num_processes 1 " in by_stage["prep_sft"]
    assert "--config_file envs/accelerate/zero3.yaml --num_processes 4 " in by_stage["full_sft"]
    assert "--config_file envs/accelerate/ddp.yaml --num_processes 2 " in by_stage["rl"]
    assert all("--main_process_port $(python -m gsm_pipeline.launch)" in line for line in lines)


def test_a_gpu_override_from_the_command_line_reaches_the_process_count(dag):
    dag.write_config({"stages": {"prep_sft": {"launcher": "ddp", "gpus": 2}}}, "ddp.yaml")
    target = f"results/{dag.run('tagged', 'prep_sft', 'ddp.yaml')}/model"
    lines = shell_commands(dag, target, "--set-resources", "prep_sft:gpu=8", configfile="ddp.yaml")
    prep = [line for line in lines if f"--out {target}" in line]
    assert len(prep) == 1 and "--config_file envs/accelerate/ddp.yaml --num_processes 8 " in prep[0]


def test_launcher_configs_exist_for_every_choice():
    for name in ("single", "ddp", "zero2", "zero3"):
        assert (REPO / f"envs/accelerate/{name}.yaml").is_file()
    with pytest.raises(ConfigError, match="launcher 'single' runs one process"):
        validate_config({"stages": {"rl": {"gpus": 2}}})


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_the_slurm_profile_dry_runs_the_whole_dag(dag):
    done = dag.snakemake("-n", "--profile", "workflow/profiles/slurm", "--slurm-no-account")
    assert "report" in done.stdout and "prep_sft" in done.stdout


def test_the_workflow_lints_clean(dag):
    done = subprocess.run(["snakemake", "--lint", "--configfile", "config.yaml", "tiny.yaml"], cwd=dag.root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr


def test_on_slurm_each_job_goes_to_the_partition_its_gpu_count_needs(dag):
    """Jobs without GPUs (the CPU default's trainings and evaluations) go to the CPU partition, and a stage given
    GPUs to the GPU partition: nothing waits in a GPU queue for no GPU."""
    import re

    dag.write_config({"stages": {"rl": {"launcher": "ddp", "gpus": 2}}}, "gpu_grpo.yaml")
    out = dag.snakemake("-n", "--profile", "workflow/profiles/slurm", "--slurm-no-account",
                        configfile="gpu_grpo.yaml").stdout
    jobs = re.findall(r"rule (\w+):.*?resources: ([^\n]*)", out, flags=re.S)
    planned = {(rule, re.search(r"slurm_partition=(\w+)", res)[1], int((re.search(r"\bgpu=(\d+)", res) or [0, 0])[1]))
               for rule, res in jobs}
    assert ("rl", "gpu", 2) in planned
    assert {(rule, part) for rule, part, gpus in planned if gpus == 0 and rule != "rl"} >= {
        ("prep_sft", "cpu"), ("full_sft", "cpu"), ("evaluate", "cpu")}
    assert all(part == ("gpu" if gpus else "cpu") for _, part, gpus in planned)
