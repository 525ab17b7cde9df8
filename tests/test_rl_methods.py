"""RL methods are matrix values: `rl: grpo | rloo` picks TRL's trainer for the RL stage, with the same rewards,
prompts and group settings; GRPO's loss variants (`loss_type`, `scale_rewards`) are row overrides that reach
GRPOConfig. A setting the row's trainer does not have is refused at validation. A method is one entry of
training/methods.py's registry: validation, the job, the report's labels and the log keys it reads follow."""
import json
import math

import pytest

from conftest import Dag
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.jobs import train_rl
from gsm_pipeline.reporting.comparison import method, stage_label, training_rows
from gsm_pipeline.reporting.compute import cost_table, stage_cost
from gsm_pipeline.reporting.page import answer
from gsm_pipeline.training import methods
from test_variants import STAGES, config, grpo


def test_an_rloo_row_trains_with_trls_rloo_trainer_and_the_rows_rewards(tmp_path, tiny_model):
    from trl import GRPOTrainer, RLOOTrainer

    # 4 completions of 8 tokens: neither is RLOOConfig's default (2, 512), so the stage's settings did reach it
    cfg = validate_config({"experiments": {"x": {"rl": "rloo", "rewards": ["format", "correctness"]}},
                           "stages": {**STAGES, "rl": {**STAGES["rl"], "num_generations": 4, "training_args": {
                               "max_steps": 1, "per_device_train_batch_size": 4}}}})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert type(trainer) is RLOOTrainer and not isinstance(trainer, GRPOTrainer)
    assert [f.__name__ for f in trainer.reward_funcs] == ["format_reward", "correctness_reward"]
    assert trainer.args.num_generations == 4 and trainer.args.max_completion_length == 8
    assert trainer.args.beta == 0.0  # the stage's settings, not RLOO's 0.05
    trainer.train()
    [step] = [h for h in trainer.state.log_history if "loss" in h]
    assert math.isfinite(step["loss"])
    assert {"rewards/format_reward/mean", "rewards/correctness_reward/mean"} <= set(step)
    # the training-dynamics keys the report plots, under the registry's names: TRL's own, and the zero-variance
    # share of flat groups and its split, which our rewards log through TRL's log_metric (the split never more)
    logs = methods.RL_METHODS["rloo"].logs
    assert {logs[q] for q in ("entropy", "clip_ratio", "reward_std_zero", "zero_std_all_correct",
                              "zero_std_all_wrong", "correct_strict")} <= set(step)
    assert step[logs["zero_std_all_correct"]] + step[logs["zero_std_all_wrong"]] <= step[logs["reward_std_zero"]]


@pytest.mark.parametrize("loss_type, scale_rewards", [("grpo", "group"), ("dr_grpo", "none"), ("dapo", "batch")])
def test_a_grpo_loss_variant_row_reaches_grpo_config(tmp_path, tiny_model, loss_type, scale_rewards):
    cfg = config(x={"overrides": {"rl": {"training_args": {"loss_type": loss_type,
                                                             "scale_rewards": scale_rewards}}}})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert type(trainer).__name__ == "GRPOTrainer"
    assert (trainer.args.loss_type, trainer.args.scale_rewards) == (loss_type, scale_rewards)


def test_a_setting_the_rows_trainer_lacks_is_refused_naming_the_key_and_the_trainer():
    with pytest.raises(ConfigError, match=r"unknown key 'experiments.x.overrides.rl.training_args.loss_type' "
                                          r"\(not a trl.RLOOConfig field"):
        config(x={"rl": "rloo", "overrides": {"rl": {"training_args": {"loss_type": "dr_grpo"}}}})
    with pytest.raises(ConfigError, match=r"key 'experiments.x.rl'"):
        config(x={"rl": "ppo"})


def test_a_job_built_by_hand_is_checked_against_its_own_trainers_config(tmp_path):
    from trl import RLOOConfig

    from gsm_pipeline.training.stage import trainer_arguments

    job = config(x={"rl": "rloo"}).stage_job("x", "rl")
    job = job.model_copy(update={"training_args": {**job.training_args, "loss_type": "dr_grpo"}})
    with pytest.raises(ConfigError, match=r"unknown key 'stages.rl.training_args.loss_type' "
                                          r"\(not a trl.RLOOConfig field"):
        trainer_arguments(RLOOConfig, job, tmp_path)


def test_the_report_names_the_rl_method():
    from gsm_pipeline.layout import report_job

    assert method("rl", {"chat_template": True, "rl": "rloo"}) == "rloo chat"
    row = next(e for e in report_job(config(x={"rl": "rloo"})).experiments if e.name == "x")
    assert row.variant["rl"] == "rloo"  # comparison.csv's rl column and the page's label read it
    assert stage_label("rl", {methods.RL_METHODS["rloo"]}) == "RLOO"


def headline_row(experiment: str, stage: str, rl: str) -> dict:
    return {"experiment": experiment, "stage": stage, "testset": "t", "n": 8, "eval_matches_training": True,
            "accuracy_strict": 0.25, "ci95_low": 0.1, "ci95_high": 0.5, "answer_rate": 0.5, "rl": rl,
            "p_strict_vs_base": None, "p_answer_rate_vs_base": None}


def test_a_new_rl_method_is_one_registry_entry(tmp_path, tiny_model, monkeypatch):
    """A toy method (GRPO's trainer with Dr. GRPO's loss fixed, logging no completion lengths under the usual key):
    the config accepts it, the job builds and trains its trainer, and the report labels it and says what it does
    not log instead of leaving a blank."""
    toy = methods.RLMethod("toy", "Toy-RL", "trl.GRPOConfig", "trl.GRPOTrainer", fixed={"loss_type": "dr_grpo"},
                           logs={**methods.GROUP_LOGS, "completion_length": "toy/length"})
    monkeypatch.setitem(methods.RL_METHODS, "toy", toy)
    with pytest.raises(ConfigError, match=r"training_args.loss_type' is set by the pipeline: use nothing: the RL "
                                          "method toy sets it"):
        config(x={"rl": "toy", "overrides": {"rl": {"training_args": {"loss_type": "grpo"}}}})
    cfg = config(x={"rl": "toy"})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert type(trainer).__name__ == "GRPOTrainer" and trainer.args.loss_type == "dr_grpo"
    trainer.train()
    history = trainer.state.log_history
    assert [r["method"] for r in training_rows([("rl-1", history)], {"rl-1": toy})] == ["Toy-RL"]
    cost = cost_table({"rl-1": stage_cost("rl-1", history, tmp_path, 0, toy)}, {"rl-1": "rl"})[0]
    assert cost["generated_tokens"] == cost["flops"] == "not logged by Toy-RL"
    page = answer([headline_row("x", "base", "toy"), headline_row("x", "rl", "toy")])
    assert page["testsets"][0]["stages"] == ["base", "Toy-RL"]
    assert any(sentence.startswith("Strict accuracy: base 25% -> Toy-RL 25%") for sentence in page["sentences"])
    assert method("rl", {"chat_template": False, "rl": "grpo"}) == "grpo raw"


@pytest.mark.dag
def test_grpo_rloo_and_dr_grpo_rows_share_their_sft_parents(tmp_path):
    rows = {"rl": {}, "rloo": {"rl": "rloo"},
            "dr_grpo": {"overrides": {"rl": {"training_args": {"loss_type": "dr_grpo", "scale_rewards": "none"}}}}}
    dag = Dag(tmp_path, {"experiments": rows})  # added to config.yaml's pair (tagged, tagged_conf)
    # SFT: tagged's prep and full serve the three new rows (row `grpo` is tagged itself), tagged_conf has its own;
    # RL: tagged's, tagged_conf's, rloo's, dr_grpo's. Evaluations per test set (2): base asked 2 ways (with and
    # without confidence), tagged 3 stages, tagged_conf 3, rloo 1, dr_grpo 1 = 10.
    assert dag.planned_jobs() == {"prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2,
                                  "full_sft": 2, "rl": 4, "evaluate": 20, "report": 1, "all": 1}
    jobs = {name: dag.run(name, "rl") for name in rows}
    assert len(set(jobs.values())) == 3
    command = next(line for line in dag.snakemake("-n", "-p", f"results/{jobs['rloo']}/model").stdout.splitlines()
                   if "gsm_pipeline.jobs.train_rl" in line)
    assert json.loads(command.split("--config '", 1)[1].split("' --")[0])["rl"] == "rloo"


def test_the_rl_entry_point_builds_the_trainer_its_job_names():
    assert [c.__name__ for c in train_rl.trainer_classes("rloo")] == ["RLOOConfig", "RLOOTrainer"]
    assert [c.__name__ for c in train_rl.trainer_classes("grpo")] == ["GRPOConfig", "GRPOTrainer"]


def test_rl_rollouts_follow_the_one_generation_engine_setting():
    """`generation.engine` decides the RL stage's rollouts as it decides evaluation's: `auto` is TRL's
    model.generate on a CPU and continuous batching on a GPU, except under mixed precision, where TRL 1.16's
    continuous batching fails (and an explicit `continuous` is refused before any job). Changing the engine
    changes what RL samples, so it names a new RL chain; `auto` does not, so chains from before keep their names."""
    from gsm_pipeline.layout import stage_run
    from gsm_pipeline.training.arguments import planned_numerics, trainer_kwargs

    def switch(cfg, gpu, autocast=False):
        job = cfg.stage_job("x", "rl")
        return trainer_kwargs(job, {**planned_numerics(job), "use_cpu": not gpu, "bf16": autocast}, {}, gloo=False)[
            "use_transformers_continuous_batching"]

    def engine(name, **model):
        return validate_config({"experiments": {"x": {}}, "stages": STAGES, "generation": {"engine": name},
                                "model": model})

    auto, continuous = config(x={}), engine("continuous", mixed_precision="no")
    assert (switch(auto, gpu=False), switch(auto, gpu=True), switch(auto, gpu=True, autocast=True)) \
        == (False, True, False)
    assert (switch(continuous, gpu=False), switch(continuous, gpu=True)) == (True, True)
    with pytest.raises(ConfigError, match=r"generation.engine: continuous cannot roll out the RL stage under mixed "
                                          r"precision .*set model.mixed_precision: \"no\""):
        engine("continuous", mixed_precision="bf16")
    with pytest.raises(ConfigError, match="generation.engine: continuous cannot roll out"):  # `auto` chose bf16
        switch(engine("continuous"), gpu=True, autocast=True)
    assert "engine" not in auto.stage_job("x", "rl").stamp()
    assert stage_run(auto, "x", "rl") != stage_run(engine("loop"), "x", "rl")
    assert stage_run(auto, "x", "full_sft") == stage_run(engine("loop"), "x", "full_sft")  # SFT samples nothing
    with pytest.raises(ConfigError, match=r"training_args.use_transformers_continuous_batching' is set by the "
                                          r"pipeline: use generation.engine$"):
        config(x={"overrides": {"rl": {"training_args": {"use_transformers_continuous_batching": True}}}})

