"""The tiny DAG runs to the report through workflow/profiles/slurm on a real single-node Slurm
(tests/slurm/start_slurm.sh installs and starts it), every non-local job a real sbatch job; and a training job
cancelled mid-run (as a preemption would) is resubmitted once by the profile and resumes from its checkpoint."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, Dag, resumable_dag, resumed_from, tiny_config, wait_for

pytestmark = pytest.mark.slow
# The pair without full SFT: each rule's expected number of Slurm jobs (the rest are localrules): 4 trainings,
# 6 evaluations (the base model under each row's prompt, each stage under its own), 1 targets.
PAIR = {"experiments": {row: {"stages": ["prep_sft", "rl"]} for row in ("tagged", "tagged_conf")}}
SLURM_JOBS = {"prep_sft": 2, "rl": 2, "evaluate": 6, "confidence_targets": 1}
PROFILE = ("--profile", "workflow/profiles/slurm", "--slurm-no-account", "--slurm-status-command", "squeue",
           "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "5")


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("starting a local Slurm needs root on a Debian machine")
    done = subprocess.run(["bash", str(REPO / "tests/slurm/start_slurm.sh")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_tiny_dag_runs_to_the_report_as_slurm_jobs(slurm, tmp_path, tiny_model, tiny_data):
    dag = Dag(tmp_path / "dag", {**tiny_config(tiny_model, tiny_data), **PAIR})
    done = dag.snakemake(*PROFILE)
    assert (dag.root / "results/report/index.html").is_file()
    logs = dag.root / ".snakemake/slurm_logs"
    for rule, count in SLURM_JOBS.items():
        job_logs = list((logs / f"rule_{rule}").rglob("*.log"))
        assert len(job_logs) == count, f"{rule}: {len(job_logs)} Slurm job logs, expected {count}"
    submitted = done.stdout + done.stderr
    assert submitted.count("has been submitted with SLURM jobid") == sum(SLURM_JOBS.values())
    for rule in ("prepare_data", "fetch_model", "report"):
        assert not (logs / f"rule_{rule}").exists(), f"{rule} should run locally"


def test_a_cancelled_training_job_is_resubmitted_once_and_resumes_from_its_checkpoint(slurm, tmp_path, tiny_model,
                                                                                      tiny_data):
    dag, stage = resumable_dag(tmp_path / "dag", tiny_model, tiny_data)
    snakemake = dag.start(*PROFILE, f"results/{stage}/model")
    wait_for(dag.root / f"results/{stage}/checkpoints/checkpoint-20/trainer_state.json", snakemake)
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()
    assert len(queued) == 1, f"expected the one training job in the queue, found {queued}"
    subprocess.run(["scancel", queued[0]], check=True)  # what a preemption or a node failure looks like to Snakemake
    out = snakemake.communicate(timeout=900)[0]
    assert snakemake.returncode == 0, out[-4000:]

    assert out.count("has been submitted with SLURM jobid") == 2, out[-4000:]  # the cancelled one and its retry
    assert resumed_from((dag.root / f"results/logs/{stage}.log").read_text()) >= 20
    history = json.loads((dag.root / f"results/{stage}/log_history.json").read_text())
    assert max(h["step"] for h in history if "loss" in h) == 60
    assert (dag.root / f"results/{stage}/model/model.safetensors").is_file()
