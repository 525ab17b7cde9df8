"""RL that learns, on the default task with the embedded model (SmolLM2-135M-Instruct, two-number additions):
GRPO from a fixed prep-SFT model on the binary correctness reward raises the policy's mean reward on fixed
held-out problems (its samples at its own temperature, before and after its steps), and ends more accurate than
its start and than the same run on a seeded coin (the random-reward control), by paired tests. Were the reward
negated, the advantages zeroed, or the completion withheld from the reward function, RL would learn nothing (or
the wrong thing) and these tests fail: they have been seen failing on each. The rows, stage settings and data are
config.yaml's; only the RL steps are fewer, full SFT is left out, and each evaluation also samples.
The per-step training reward is no such measure: each step sees 2 new prompts, whose difficulty swamps any trend
(one run: right samples 49% in the first 10 steps, 42% in the last, while held-out accuracy rose 55% -> 69%)."""
from __future__ import annotations

import json

import pytest

from conftest import REPO, Dag
from gsm_pipeline.grading.metrics import mcnemar_exact

pytestmark = pytest.mark.slow

STEPS = 30
SAMPLES = 2
OVERLAY = {"stages": {"rl": {"training_args": {"max_steps": STEPS}}},
           # GRPO's own temperature; no KL to the base, which these tests do not read
           "evaluation": {"samples": SAMPLES, "sample_temperature": 1.0, "kl_to_base": False},
           "experiments": {"arith": {"stages": ["prep_sft", "rl"]}}}


def outcomes(dag: Dag, run: str, prompt: str) -> list[bool]:
    path = dag.root / f"results/{run}/eval/{prompt}/rg_id/predictions.jsonl"
    return [json.loads(line)["correct_strict"] for line in path.read_text().splitlines()]


def mean_reward(dag: Dag, run: str, prompt: str) -> dict[str, float]:
    """Per held-out problem, the share of the policy's samples that earn the binary reward (strictly right)."""
    path = dag.root / f"results/{run}/eval/{prompt}/rg_id/samples.jsonl"
    out: dict[str, list[bool]] = {}
    for line in path.read_text().splitlines():
        sample = json.loads(line)
        out.setdefault(sample["id"], []).append(sample["correct_strict"])
    return {question: sum(right) / len(right) for question, right in out.items()}


@pytest.fixture(scope="module")
def learnt(tmp_path_factory) -> Dag:
    dag = Dag(tmp_path_factory.mktemp("learning"), OVERLAY, base=REPO / "config.yaml")
    cfg = dag.config()
    prompt = cfg.prompt_key("arith")
    targets = [f"results/{dag.run(row, stage)}/eval/{prompt}/rg_id/metrics.json"
               for row, stage in (("arith", "prep_sft"), ("arith", "rl"), ("arith_random", "rl"))]
    dag.snakemake(*targets)
    return dag


def test_grpo_on_the_true_reward_raises_its_mean_reward_on_fixed_problems(learnt: Dag):
    from scipy.stats import ttest_rel

    prompt = learnt.config().prompt_key("arith")
    before = mean_reward(learnt, learnt.run("arith", "prep_sft"), prompt)
    after = mean_reward(learnt, learnt.run("arith", "rl"), prompt)
    assert before.keys() == after.keys() and len(before) >= 100
    questions = sorted(before)
    first, last = ([side[q] for q in questions] for side in (before, after))
    gain = (sum(last) - sum(first)) / len(questions)
    test = ttest_rel(last, first, alternative="greater")
    assert gain >= 0.05 and test.pvalue < 0.01, f"mean reward {sum(first) / len(first):.3f} -> " \
        f"{sum(last) / len(last):.3f} (p = {test.pvalue:.2g})"


def test_grpo_on_the_true_reward_ends_more_accurate_than_its_start_and_than_the_random_reward_control(learnt: Dag):
    prompt = learnt.config().prompt_key("arith")
    start = outcomes(learnt, learnt.run("arith", "prep_sft"), prompt)
    rl = outcomes(learnt, learnt.run("arith", "rl"), prompt)
    coin = outcomes(learnt, learnt.run("arith_random", "rl"), prompt)
    assert len(rl) == len(coin) == len(start) >= 100
    against_coin, against_start = mcnemar_exact(rl, coin), mcnemar_exact(rl, start)
    assert sum(rl) > sum(coin) and against_coin["p_value"] < 0.05, (sum(start), sum(rl), sum(coin), against_coin)
    assert sum(rl) > sum(start) and against_start["p_value"] < 0.05, (sum(start), sum(rl), against_start)
