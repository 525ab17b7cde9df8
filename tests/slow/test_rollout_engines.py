"""The RL stage's rollouts through each generation engine on the tiny model: TRL's model.generate (`loop`, the
default on a CPU; the fast suite's RL tests train with it) and transformers' continuous batching (`continuous`,
the default on a GPU where the trainer does not autocast). Slow: a continuous-batching RL step takes ~35 s on
2 cores."""
import math

import pytest

from gsm_pipeline.config import validate_config
from test_variants import STAGES, grpo

pytestmark = pytest.mark.slow


def test_an_rl_step_rolls_out_through_continuous_batching_and_logs_its_rewards(tmp_path, tiny_model):
    from gsm_pipeline.training.stage import runtime_record

    cfg = validate_config({"experiments": {"x": {}}, "stages": STAGES, "generation": {"engine": "continuous"},
                           "model": {"mixed_precision": "no"}})
    trainer, _ = grpo(tmp_path, tiny_model, cfg, "x")
    assert trainer.args.use_transformers_continuous_batching
    runtime = runtime_record(trainer, cfg.stage_job("x", "rl"), 1)
    assert (runtime["engine"], runtime["engine_why"]) == ("continuous", "asked for")
    trainer.train()
    [step] = [h for h in trainer.state.log_history if "loss" in h]
    assert math.isfinite(step["loss"]) and "rewards/correctness_reward/mean" in step
