"""The `gsm-pipeline` subcommands a researcher runs by hand are the jobs the DAG runs: given the arguments a
rule passes, `train-sft` and `train-rl` train that job to its last step, `report` rebuilds the rule's tables,
and a training job stops before its first step on a curve point it would never reach (slow suite: they read the tiny
DAG's run)."""
import json
import math
import re
import shlex
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.dag]


def gsm_pipeline(*args, cwd):
    return subprocess.run(["gsm-pipeline", *args], cwd=cwd, capture_output=True, text=True)


def rule_arguments(dag, rule: str, target: str, module: str) -> list[str]:
    """The arguments the rule passes to `python -m gsm_pipeline.jobs.<module>` to make `target`, from Snakemake's
    printed commands (--forcerun plans every job of the rule, in no fixed order: the one whose --out holds the
    target)."""
    out = dag.snakemake("-n", "-p", "--forcerun", rule, target).stdout
    for line in out.splitlines():
        if f"-m gsm_pipeline.jobs.{module} " in line:
            command = line.split(f"-m gsm_pipeline.jobs.{module} ", 1)[1].rsplit(" > ", 1)[0]  # no log redirect
            args = shlex.split(command)
            written = args[args.index("--out") + 1]
            if target == written or target.startswith(written + "/"):
                return args
    raise AssertionError(f"no {module} command writes {target}:\n{out[-3000:]}")


def replace(args: list[str], **values: str) -> list[str]:
    out = list(args)
    for flag, value in values.items():
        out[out.index("--" + flag.replace("_", "-")) + 1] = value
    return out


def losses(path) -> list[float]:
    return [row["loss"] for row in json.loads(path.read_text()) if "loss" in row]


@pytest.mark.parametrize("stage,command,module", [("prep_sft", "train-sft", "train_sft"),
                                                  ("rl", "train-rl", "train_rl")])
def test_train_commands_run_a_stage_of_the_dag_given_its_arguments(tiny_dag, tmp_path, stage, command, module):
    run = tiny_dag.run("tagged", stage)
    args = rule_arguments(tiny_dag, stage, f"results/{run}/model", module)
    args = replace(args, out=str(tmp_path / "model"), checkpoints=str(tmp_path / "checkpoints"),
                   log_history=str(tmp_path / "log_history.json"))
    done = gsm_pipeline(command, *args, cwd=tiny_dag.root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    ours = losses(tmp_path / "log_history.json")
    dags = losses(tiny_dag.root / f"results/{run}/log_history.json")
    steps = json.loads(args[args.index("--config") + 1])["training_args"]["max_steps"]
    assert len(ours) == len(dags) == steps  # every optimizer step of the job, logged
    assert all(math.isfinite(x) for x in ours)
    assert ours == pytest.approx(dags, rel=1e-4)  # the same job: the same losses (one thread, fp32)


def test_report_command_rebuilds_the_dags_comparison_table(tiny_dag, tmp_path):
    args = replace(rule_arguments(tiny_dag, "report", "results/report/index.html", "report"), out=str(tmp_path))
    done = gsm_pipeline("report", *args, cwd=tiny_dag.root)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("comparison.csv", "per_example.csv", "curve.csv", "cost.csv"):
        assert (tmp_path / name).read_text() == (tiny_dag.root / "results/report" / name).read_text(), name
    assert "<html" in (tmp_path / "index.html").read_text()


def test_a_curve_step_past_the_end_of_an_epoch_trained_stage_stops_the_job_before_training(tiny_dag, tmp_path):
    run = tiny_dag.run("tagged", "prep_sft")
    args = rule_arguments(tiny_dag, "prep_sft", f"results/{run}/model", "train_sft")
    job = json.loads(args[args.index("--config") + 1])
    job["training_args"].pop("max_steps")  # trained by epochs: its length is known only once the data is loaded
    job["training_args"]["num_train_epochs"] = 1
    job["eval_checkpoints"] = [1, 10_000]
    args = replace(args, config=json.dumps(job), out=str(tmp_path / "model"),
                   checkpoints=str(tmp_path / "checkpoints"), log_history=str(tmp_path / "log_history.json"))
    done = gsm_pipeline("train-sft", *args, cwd=tiny_dag.root)
    assert done.returncode != 0
    # one line, after the trainer's progress bar has started and before its first step
    assert re.search(r"error: stages\.prep_sft\.eval_checkpoints: step 10000 is not before the stage's last "
                     r"step \(\d+ optimizer steps on this data\)", done.stderr), done.stderr[-2000:]
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))  # not one step was trained
    assert not (tmp_path / "model").exists()
