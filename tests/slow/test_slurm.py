"""The tiny DAG runs to the report through workflow/profiles/slurm on a real single-node Slurm
(tests/slurm/start_slurm.sh installs and starts it), every non-local job a real sbatch job."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, Dag, tiny_config

pytestmark = pytest.mark.slow
# Each rule's expected number of Slurm jobs (the rest are localrules): 6 trainings, 8 evaluations, 1 targets.
SLURM_JOBS = {"prep_sft": 2, "full_sft": 2, "grpo": 2, "evaluate": 8, "confidence_targets": 1}


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("starting a local Slurm needs root on a Debian machine")
    done = subprocess.run(["bash", str(REPO / "tests/slurm/start_slurm.sh")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_tiny_dag_runs_to_the_report_as_slurm_jobs(slurm, tmp_path, tiny_model, tiny_data):
    dag = Dag(tmp_path / "dag", tiny_config(tiny_model, tiny_data))
    done = dag.snakemake("--profile", "workflow/profiles/slurm", "--slurm-no-account",
                         "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
                         "--slurm-init-seconds-before-status-checks", "5")
    assert (dag.root / "results/report/index.html").is_file()
    logs = dag.root / ".snakemake/slurm_logs"
    for rule, count in SLURM_JOBS.items():
        job_logs = list((logs / f"rule_{rule}").rglob("*.log"))
        assert len(job_logs) == count, f"{rule}: {len(job_logs)} Slurm job logs, expected {count}"
    submitted = done.stdout + done.stderr
    assert submitted.count("has been submitted with SLURM jobid") == sum(SLURM_JOBS.values())
    for rule in ("prepare_data", "fetch_model", "report"):
        assert not (logs / f"rule_{rule}").exists(), f"{rule} should run locally"
