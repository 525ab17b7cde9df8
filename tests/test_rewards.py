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


def test_reward_functions_follow_trl_signature_and_are_named_for_logging():
    fns = make_reward_functions(["format", "correctness", "binary"], "tagged")
    assert [f.__name__ for f in fns] == ["format_reward", "correctness_reward", "binary_reward"]
    completions, answers = [FULL, "no idea"], ["7", "7"]
    assert fns[0](completions=completions, answer=answers, prompts=["p", "p"]) == [1.0, 0.0]
    assert fns[1](completions=completions, answer=answers) == [2.0, 0.0]
    assert fns[2](completions=completions, answer=answers) == [1.0, 0.0]
