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


def coins(fn, step, prompts, completions=None):
    from types import SimpleNamespace

    completions = completions or ["#### 7"] * len(prompts)
    return fn(completions=completions, prompts=prompts, answer=["7"] * len(prompts),
              trainer_state=SimpleNamespace(global_step=step))


def random_reward(seed=3):
    [fn] = make_reward_functions(["random"], "gsm8k", seed=seed)
    return fn


GROUPS = [f"prompt {i}" for i in range(8) for _ in range(8)]  # 8 prompts x 8 completions, as TRL lays them out


def test_random_reward_is_a_seeded_coin_per_completion_blind_to_what_it_says():
    first = coins(random_reward(), 5, GROUPS)
    assert set(first) == {0.0, 1.0} and 16 < sum(first) < 48  # a coin per completion, identical ones included
    assert coins(random_reward(), 5, GROUPS, ["wrong"] * 64) == first  # blind to the completion
    assert coins(random_reward(4), 5, GROUPS) != first and coins(random_reward(), 6, GROUPS) != first
    fn = random_reward()
    # a second generation in the same optimizer step (gradient accumulation) draws fresh coins
    assert coins(fn, 5, GROUPS) == first and coins(fn, 5, GROUPS) != first


def test_a_resumed_run_draws_the_coins_the_original_drew_at_the_same_step():
    """A run resumed at step 3 starts with a new process: its coins from step 3 on are the original's, whatever
    the original drew before, and whatever other reward calls (TRL's evaluation loop) came in between."""
    original = random_reward()
    drawn = {step: [coins(original, step, GROUPS) for _ in range(2)] for step in range(1, 5)}  # 2 per step
    resumed = random_reward()
    assert [coins(resumed, 3, GROUPS) for _ in range(2)] == drawn[3]
    coins(resumed, 4, ["an evaluation prompt"] * 8)  # another call in the step: the training coins do not shift
    assert [coins(resumed, 4, GROUPS) for _ in range(2)] == drawn[4]


def test_each_process_draws_its_own_coins(monkeypatch):
    """Under DDP every process holds other completions: the same position on two ranks is not the same coin."""
    monkeypatch.setenv("RANK", "0")
    rank0 = coins(random_reward(), 5, GROUPS)
    monkeypatch.setenv("RANK", "1")
    assert coins(random_reward(), 5, GROUPS) != rank0


def test_flat_groups_split_into_all_right_and_all_wrong():
    from gsm_pipeline.grading.rewards import group_split

    prompts = ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3
    totals = [3, 3, 3] + [0, 0, 0] + [1, 0, 3] + [1, 1, 1]
    correct = [True] * 3 + [False] * 3 + [False, False, True] + [True, False, True]
    # a: flat and right; b: flat and wrong; c: varies (teaches); d: flat total but mixed answers (format only)
    assert group_split(totals, correct, prompts, 3) == {"groups/zero_std": 0.75, "groups/zero_std_all_correct": 0.25,
                                                        "groups/zero_std_all_wrong": 0.25}
    assert group_split(totals[:4], correct[:4], prompts[:4], 3) is None  # not whole groups: not guessed
    assert group_split(totals, correct, prompts[1:] + ["e"], 3) is None


def test_rewards_that_differ_only_by_float_noise_are_flat_and_the_split_never_exceeds_the_total():
    """The calibration reward of four wrong completions, -1 - c^2 summed in another order, differs by ~1e-16:
    that group teaches nothing, and it counts as flat, all wrong, in the total as in the split."""
    from gsm_pipeline.grading.rewards import group_split

    noisy = [-1.0 - 0.3 ** 2, -(0.3 ** 2) - 1.0, -1.09 + 6.4e-8, -1.09]
    out = group_split(noisy, [False] * 4, ["p"] * 4, 4)
    assert out == {"groups/zero_std": 1.0, "groups/zero_std_all_correct": 0.0, "groups/zero_std_all_wrong": 1.0}
    assert group_split([-1.0, -1.0, -1.0, -0.5], [False] * 4, ["p"] * 4, 4)["groups/zero_std"] == 0.0


def test_the_split_is_logged_after_the_last_reward_of_each_call():
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
    assert logged == [("groups/zero_std", 0.5), ("groups/zero_std_all_correct", 0.5),
                      ("groups/zero_std_all_wrong", 0.0), ("completions/correct_strict", 0.5)]


def test_under_ddp_a_group_split_between_processes_is_whole_again():
    """Per-device 2 completions of groups of 4 over 2 processes (TRL needs only global divisibility): each
    process holds half a group; the split is computed on the generation batch gathered in rank order."""
    from gsm_pipeline.grading.rewards import logging_group_split

    completions = ["1+6=7\n#### 7"] * 2 + ["1+6=7\n#### 7"] * 2  # group p: all right on both processes
    other_rank: list = []  # what rank 1 holds of the same group, as rank 1's rewards would compute it
    fns = logging_group_split(make_reward_functions(["binary"], "gsm8k"), "gsm8k", size=4,
                              gather=lambda rows: rows + other_rank)
    [rank1] = logging_group_split(make_reward_functions(["binary"], "gsm8k"), "gsm8k", size=4,
                                  gather=lambda rows: other_rank.extend(rows) or rows)
    half = {"completions": completions[2:], "answer": ["7", "7"], "prompts": ["p", "p"], "log_metric": print}
    rank1(**half)
    logged = []
    fns[0](completions=completions[:2], answer=["7", "7"], prompts=["p", "p"],
           log_metric=lambda k, v: logged.append((k, v)))
    assert logged == [("groups/zero_std", 1.0), ("groups/zero_std_all_correct", 1.0),
                      ("groups/zero_std_all_wrong", 0.0), ("completions/correct_strict", 1.0)]
