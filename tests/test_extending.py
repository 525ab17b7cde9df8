"""The contributing page's walkthroughs, done as written on a copy of the workflow: a new stage kind is its table
entry, its settings and its job; a new reward is its function and its name. (A new task, answer format and RL
method: tests/test_tasks.py, test_formats.py, test_rl_methods.py.)"""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import Dag

pytestmark = pytest.mark.dag

# docs/contributing.md, "Add a stage kind": an SFT whose rows are repeated, trained on full SFT's rows
TOY_ENTRY = '''
KINDS["toy"] = Kind("toy:ToyStageConfig", "toy:ToyJob", "train_toy", "toy SFT", "tab:olive", "trl.SFTConfig",
                    "SFT on every row `repeat` times")
STAGES["toy"] = Stage("toy", "toy", "prep_sft", "toy", "A toy stage", "x", split="full_sft", default=False)
'''
TOY_SETTINGS = '''
from typing import Any
from pydantic import Field
from .training import SFTJob, SFTStageConfig

class ToyStageConfig(SFTStageConfig):
    repeat: int = Field(2, ge=1, description="How often each row is trained on")

class ToyJob(ToyStageConfig, SFTJob):
    def trained_rows(self, rows, split_size):
        return rows * self.repeat, f"{rows} rows x {self.repeat}"
'''
TOY_JOB = '''
from ..errors import run_main
from ..settings.toy import ToyJob
from ..training.stage import run_stage
from .train_sft import build_trainer

def main(argv=None):
    run_stage(ToyJob, build_trainer, "A toy kind: SFT.", argv)

if __name__ == "__main__":
    run_main(main)
'''


def test_a_new_stage_kind_is_its_table_entry_its_settings_and_its_job(tmp_path):
    dag = Dag(tmp_path, {"experiments": {"toy_row": {"stages": ["prep_sft", "toy"]}},
                         "stages": {"toy": {"repeat": 3, "training_args": {"num_train_epochs": 1,
                                                                           "per_device_train_batch_size": 8}}}})
    package = dag.root / "workflow/gsm_pipeline"
    stages = package / "stages.py"
    stages.write_text(stages.read_text().replace("STAGE_NAMES = tuple(STAGES)", TOY_ENTRY + "STAGE_NAMES = "
                                                 "tuple(STAGES)"))
    (package / "settings/toy.py").write_text(TOY_SETTINGS)
    (package / "jobs/train_toy.py").write_text(TOY_JOB)
    # the rule, the config section, the dry-run's length check and the job's command follow from those three
    assert dag.planned_jobs()["toy"] == 1
    done = dag.snakemake("-n", "-p", "--forceall", "--until", "toy")
    [command] = [line for line in done.stdout.splitlines() if "gsm_pipeline.jobs.train_toy" in line]
    assert "--data results/data/full_sft.jsonl" in command and "--parent results/prep_sft-" in command
    validated = subprocess.run([sys.executable, "-m", "gsm_pipeline.validate", "config.yaml", "tiny.yaml"],
                               cwd=dag.root, capture_output=True, text=True, env=dag.env())
    assert "80 rows x 3 = 240 rows / (8 per device" in validated.stdout, validated.stdout + validated.stderr
    dag.write_config({"stages": {"toy": {"repeat": 0}}}, "bad.yaml")
    refused = dag.snakemake("-n", configfile="bad.yaml", check=False)
    assert "stages.toy.repeat" in refused.stdout + refused.stderr


TOY_REWARD = '''
    def brevity_reward(completions, **kwargs):
        return [1.0 / (1 + len(c)) for c in completions]

    table["brevity"] = brevity_reward
    return [table[name] for name in names]
'''


def test_a_new_reward_is_its_function_and_its_name(tmp_path):
    dag = Dag(tmp_path, {})
    package = dag.root / "workflow/gsm_pipeline"
    rewards = package / "grading/rewards.py"
    rewards.write_text(rewards.read_text().replace("\n    return [table[name] for name in names]\n", TOY_REWARD, 1))
    settings = package / "settings/training.py"
    settings.write_text(settings.read_text().replace('"calibration", "random"]', '"calibration", "random", '
                                                     '"brevity"]', 1))
    script = ("from gsm_pipeline.config import validate_config\n"
              "from gsm_pipeline.grading.rewards import make_reward_functions\n"
              "cfg = validate_config({'experiments': {'short': {'rewards': ['format', 'brevity']}}})\n"
              "job = cfg.stage_job('short', 'rl')\n"
              "[fmt, brevity] = make_reward_functions(job.rewards, job.prompt.answer_format)\n"
              "print(brevity.__name__, brevity(['a', 'abc']))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=dag.root, capture_output=True, text=True,
                          env=dag.env())
    assert done.stdout.strip() == "brevity_reward [0.5, 0.25]", done.stderr[-2000:]
