"""RL methods are matrix values: `rl: grpo | rloo` picks TRL's trainer for the RL stage, with the same rewards,
prompts and group settings; GRPO's loss variants (`loss_type`, `scale_rewards`) are row overrides that reach
GRPOConfig. A setting the row's trainer does not have is refused at validation."""
import json
import math

import pytest

from conftest import Dag
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.jobs import train_grpo
from gsm_pipeline.reporting.comparison import method
from test_variants import config, grpo


def test_an_rloo_row_trains_with_trls_rloo_trainer_and_the_rows_rewards(tmp_path, tiny_model):
    from trl import GRPOTrainer, RLOOTrainer

    cfg = config(x={"rl": "rloo", "rewards": ["format", "correctness"]})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert type(trainer) is RLOOTrainer and not isinstance(trainer, GRPOTrainer)
    assert [f.__name__ for f in trainer.reward_funcs] == ["format_reward", "correctness_reward"]
    assert trainer.args.num_generations == 2 and trainer.args.beta == 0.0  # the stage's settings, not RLOO's 0.05
    trainer.train()
    [step] = [h for h in trainer.state.log_history if "loss" in h]
    assert math.isfinite(step["loss"])
    assert {"rewards/format_reward/mean", "rewards/correctness_reward/mean"} <= set(step)


@pytest.mark.parametrize("loss_type, scale_rewards", [("grpo", "group"), ("dr_grpo", "none"), ("dapo", "batch")])
def test_a_grpo_loss_variant_row_reaches_grpo_config(tmp_path, tiny_model, loss_type, scale_rewards):
    cfg = config(x={"overrides": {"grpo": {"training_args": {"loss_type": loss_type,
                                                             "scale_rewards": scale_rewards}}}})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert type(trainer).__name__ == "GRPOTrainer"
    assert (trainer.args.loss_type, trainer.args.scale_rewards) == (loss_type, scale_rewards)


def test_a_setting_the_rows_trainer_lacks_is_refused_naming_the_key_and_the_trainer():
    with pytest.raises(ConfigError, match=r"unknown key 'experiments.x.overrides.grpo.training_args.loss_type' "
                                          r"\(not a trl.RLOOConfig field"):
        config(x={"rl": "rloo", "overrides": {"grpo": {"training_args": {"loss_type": "dr_grpo"}}}})
    with pytest.raises(ConfigError, match=r"key 'experiments.x.rl'"):
        config(x={"rl": "ppo"})


def test_a_job_built_by_hand_is_checked_against_its_own_trainers_config(tmp_path):
    from trl import RLOOConfig

    from gsm_pipeline.training.stage import trainer_arguments

    job = config(x={"rl": "rloo"}).grpo_job("x")
    job = job.model_copy(update={"training_args": {**job.training_args, "loss_type": "dr_grpo"}})
    with pytest.raises(ConfigError, match=r"unknown key 'stages.grpo.training_args.loss_type' "
                                          r"\(not a trl.RLOOConfig field"):
        trainer_arguments(RLOOConfig, job, tmp_path)


def test_the_report_names_the_rl_method():
    assert method("grpo", {"chat_template": True, "rl": "rloo"}) == "rloo chat"
    assert method("grpo", {"chat_template": False, "rl": "grpo"}) == "grpo raw"


def test_grpo_rloo_and_dr_grpo_rows_share_their_sft_parents(tmp_path):
    rows = {"grpo": {}, "rloo": {"rl": "rloo"},
            "dr_grpo": {"overrides": {"grpo": {"training_args": {"loss_type": "dr_grpo", "scale_rewards": "none"}}}}}
    dag = Dag(tmp_path, {"experiments": rows})  # added to config.yaml's pair (tagged, tagged_conf)
    # SFT: tagged's prep and full serve the three new rows (row `grpo` is tagged itself), tagged_conf has its own;
    # RL: tagged's, tagged_conf's, rloo's, dr_grpo's. Evaluations per test set (2): base asked 2 ways (with and
    # without confidence), tagged 3 stages, tagged_conf 3, rloo 1, dr_grpo 1 = 10.
    assert dag.planned_jobs() == {"prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2,
                                  "full_sft": 2, "grpo": 4, "evaluate": 20, "report": 1, "all": 1}
    jobs = {name: dag.run(name, "grpo") for name in rows}
    assert len(set(jobs.values())) == 3
    command = next(line for line in dag.snakemake("-n", "-p", f"results/{jobs['rloo']}/model").stdout.splitlines()
                   if "gsm_pipeline.jobs.train_grpo" in line)
    assert json.loads(command.split("--config '", 1)[1].split("' --")[0])["rl"] == "rloo"


def test_the_rl_entry_point_builds_the_trainer_its_job_names():
    assert [c.__name__ for c in train_grpo.trainer_classes("rloo")] == ["RLOOConfig", "RLOOTrainer"]
    assert [c.__name__ for c in train_grpo.trainer_classes("grpo")] == ["GRPOConfig", "GRPOTrainer"]
