"""GRPO rewards are pure functions of the completion and the gold answer."""
from gsm_pipeline.grading.rewards import correctness_score, format_score, make_reward_functions

FULL = "<start_working_out>3+4=7<end_working_out><SOLUTION>7</SOLUTION>"


def test_format_reward_grades_structure_not_correctness():
    assert format_score(FULL, "tagged") == 1.0
    assert format_score("<SOLUTION>9</SOLUTION>", "tagged") == 0.5
    assert format_score("7", "tagged") == 0.0
    assert format_score("3+4=7\n#### 7", "gsm8k") == 1.0


def test_correctness_reward_needs_the_strict_answer():
    assert correctness_score(FULL, "3+4=7\n#### 7", "tagged") == 2.0
    assert correctness_score(FULL, "8", "tagged") == 0.0
    assert correctness_score("the answer is 7", "7", "tagged") == 0.0


def test_every_reward_the_config_offers_is_built_and_logged_under_its_name():
    from typing import get_args

    from gsm_pipeline.settings.training import RewardName

    names = list(get_args(RewardName))
    assert [f.__name__ for f in make_reward_functions(names, "tagged")] == [f"{n}_reward" for n in names]


def test_reward_functions_follow_trl_signature_and_are_named_for_logging():
    fns = make_reward_functions(["format", "correctness", "binary"], "tagged")
    assert [f.__name__ for f in fns] == ["format_reward", "correctness_reward", "binary_reward"]
    completions, answers = [FULL, "no idea"], ["7", "7"]
    assert fns[0](completions=completions, answer=answers, prompts=["p", "p"]) == [1.0, 0.0]
    assert fns[1](completions=completions, answer=answers) == [2.0, 0.0]
    assert fns[2](completions=completions, answer=answers) == [1.0, 0.0]


def test_random_reward_is_a_seeded_coin_per_completion_blind_to_what_it_says():
    from types import SimpleNamespace

    def coins(seed, step, completions):
        [fn] = make_reward_functions(["random"], "gsm8k", seed=seed)
        return fn(completions=completions, answer=["7"] * len(completions),
                  trainer_state=SimpleNamespace(global_step=step))

    same = ["#### 7"] * 64
    first = coins(3, 5, same)
    assert set(first) == {0.0, 1.0} and 16 < sum(first) < 48  # a coin per completion, identical ones included
    assert coins(3, 5, same) == first  # reproducible: a rerun or a resumed run draws the same coins
    assert coins(3, 5, ["wrong"] * 64) == first  # blind to the completion
    assert coins(4, 5, same) != first and coins(3, 6, same) != first  # the seed and the step change them
    [fn] = make_reward_functions(["random"], "gsm8k", seed=3)
    state = SimpleNamespace(global_step=5)
    # a second reward call in the same optimizer step (gradient accumulation) draws fresh coins
    assert fn(completions=same, answer=same, trainer_state=state) != fn(completions=same, answer=same,
                                                                       trainer_state=state)


def test_zero_variance_groups_split_into_all_right_and_all_wrong():
    from gsm_pipeline.grading.rewards import group_split

    prompts = ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    totals = [3, 3, 3] + [0, 0, 0] + [1, 0, 3] + [1, 1, 1]
    correct = [True] * 3 + [False] * 3 + [False, False, True] + [True, False, True]
    # a: flat and right; b: flat and wrong; c: varies (teaches); d: flat total but mixed answers (format only)
    assert group_split(totals, correct, prompts, 3) == {"groups/zero_std_all_correct": 0.25,
                                                        "groups/zero_std_all_wrong": 0.25}
    assert group_split(totals[:4], correct[:4], prompts[:4], 3) is None  # not whole groups: not guessed
    assert group_split(totals, correct, prompts[1:] + ["e"], 3) is None


def test_the_split_is_logged_beside_trl_metrics_after_the_last_reward_of_each_call():
    from gsm_pipeline.grading.rewards import logging_group_split

    logged = []
    fns = logging_group_split(make_reward_functions(["format", "binary"], "gsm8k"), "gsm8k", size=2)
    assert [f.__name__ for f in fns] == ["format_reward", "binary_reward"]
    completions = ["1+6=7\n#### 7", "1+6=7\n#### 7", "#### 8", "1+1=2\n#### 8"]
    kwargs = {"completions": completions, "answer": ["7", "7", "7", "7"], "prompts": ["p", "p", "q", "q"],
              "log_metric": lambda k, v: logged.append((k, v))}
    assert fns[0](**kwargs) == [1.0, 1.0, 0.5, 1.0] and logged == []
    assert fns[1](**kwargs) == [1.0, 1.0, 0.0, 0.0]
    # totals: p (2, 2) flat and right; q (0.5, 1) not flat
    assert logged == [("groups/zero_std_all_correct", 0.5), ("groups/zero_std_all_wrong", 0.0)]
