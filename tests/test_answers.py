"""Answer extraction: strict follows the requested format, flexible takes the last number,
numbers are normalised before a tolerant comparison, and nothing ever raises."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsm_pipeline.grading.answers import (
    extract_confidence,
    extract_flexible,
    extract_strict,
    final_number,
    grade,
    is_correct,
    normalize_number,
    split_gsm8k_answer,
)


@pytest.mark.parametrize("text, value", [
    ("42", 42.0), ("1,234", 1234.0), ("$1,234.50", 1234.5), ("12.", 12.0), ("12.0", 12.0), ("-7", -7.0),
    ("+5", 5.0), ("45%", 45.0), ("3/4", 0.75), ("-1/2", -0.5), (" 18 ", 18.0), ("0.5", 0.5), (".5", 0.5),
    ("abc", None), ("", None), (None, None), ("1/0", None), ("--3", None), ("inf", None), ("nan", None),
])
def test_numbers_are_normalised(text, value):
    assert normalize_number(text) == value


def test_gsm8k_gold_answers_keep_their_final_number_and_lose_calculator_annotations():
    answer = "She has 3*4=<<3*4=12>>12 eggs.\n#### 1,012"
    assert final_number(answer) == 1012.0
    reasoning, final = split_gsm8k_answer(answer)
    assert reasoning == "She has 3*4=12 eggs." and final == "1,012"
    assert final_number("17") == 17.0


@pytest.mark.parametrize("completion, fmt, value", [
    ("<start_working_out>2+2=4<end_working_out><SOLUTION>4</SOLUTION>", "tagged", 4.0),
    ("<SOLUTION> $1,000 </SOLUTION>", "tagged", 1000.0),
    ("<SOLUTION>3</SOLUTION> then <SOLUTION>5</SOLUTION>", "tagged", 5.0),  # the last answer counts
    ("the answer is 4", "tagged", None),  # no tag: strict fails, flexible would not
    ("so 6*7=42\n#### 42", "gsm8k", 42.0),
    ("#### -3.5", "gsm8k", -3.5),
    ("####42", "gsm8k", None),  # lm-eval's strict regex needs the space
    ("thus \\boxed{12}.", "boxed", 12.0),
    ("\\boxed{\\frac{1}{2}}", "boxed", 0.5),  # LaTeX answers go through math-verify
    ("\\boxed{\\$18}", "boxed", 18.0),
    ("\\boxed{1{,}000}", "boxed", 1000.0),
    ("\\boxed{18 \\text{ dollars}}", "boxed", 18.0),
    ("so \\boxed{3} then \\boxed{4", "boxed", 3.0),  # the last *balanced* box
    ("<SOLUTION>**42**</SOLUTION>", "tagged", 42.0),  # markdown emphasis around a tagged answer
    ("<SOLUTION>`7`</SOLUTION>", "tagged", 7.0),
])
def test_strict_extraction_takes_only_the_requested_format(completion, fmt, value):
    assert extract_strict(completion, fmt) == value


@pytest.mark.parametrize("completion, value", [
    ("3 apples and 4 pears make 7", 7.0),
    ("Total: $1,250.", 1250.0),
    ("<SOLUTION>18</SOLUTION><confidence>0.85</confidence>", 18.0),  # a confidence is never the answer
    ("answer 9 <confidence> 0.3 </confidence>", 9.0),
    ("<SOLUTION>32</SOLUTION><confidence>0.", 32.0),  # a confidence cut off by the token budget neither
    ("no digits here", None),
    ("-12 degrees", -12.0),
])
def test_flexible_extraction_takes_the_last_number_but_not_a_confidence(completion, value):
    assert extract_flexible(completion) == value


def test_confidence_is_read_only_when_in_range():
    assert extract_confidence("<SOLUTION>1</SOLUTION><confidence>0.85</confidence>") == 0.85
    assert extract_confidence("<confidence>1.5</confidence>") is None
    assert extract_confidence("<confidence>high</confidence>") is None
    assert extract_confidence("nothing") is None


# GSM8K answers are exact numbers: lm-evaluation-harness compares strings, and a relative tolerance (1e-6 before
# issue 27) graded `#### 1450001` correct against 1450000, in evaluation and in GRPO's rewards.
EXACT = [
    ("1450001", "1450000", False), ("1450000", "1,450,000", True), ("999999", "1000000", False),
    ("12345678901234567", "12345678901234568", False),  # beyond a float's 53 bits of mantissa
    ("123456789012345678901234567890", "123456789012345678901234567890", True),
    ("1200.50", "1200.5", True), ("72.0", "72", True), ("$1,200.51", "1200.5", False),
    ("1000000.01", "1000000", False), ("19.999999", "20", False), ("0.30", "0.3", True),
    ("-5", "5", False), ("-1450000", "-1450001", False), ("-3.25", "-3.25", True), ("-0", "0", True),
]


@pytest.mark.parametrize("said, gold, correct", EXACT)
def test_grading_is_exact_after_normalisation_at_every_magnitude(said, gold, correct):
    graded = grade(f"so the answer is\n#### {said}", final_number(f"#### {gold}"), "gsm8k")
    assert (graded["correct_strict"], graded["correct_flexible"]) == (correct, correct)
    tagged = grade(f"<SOLUTION>{said}</SOLUTION>", final_number(gold), "tagged")
    boxed = grade(f"\\boxed{{{said.replace('$', '')}}}", final_number(gold), "boxed")
    assert tagged["correct_strict"] is correct and boxed["correct_strict"] is correct


def test_grpo_rewards_an_exact_answer_only():
    from gsm_pipeline.grading.rewards import correctness_score

    assert correctness_score("#### 1450001", "1450000", "gsm8k") == 0.0
    assert correctness_score("#### 1,450,000", "1450000", "gsm8k") == 2.0


def test_comparison_accepts_numbers_as_records_hold_them_and_refuses_wrong_ones():
    assert is_correct(1200.5, final_number("1,200.50")) and is_correct(72, final_number("72.0"))
    assert is_correct(0.3, final_number("0.30"))  # a float read back from JSON is the decimal it was written as
    assert not is_correct(41.0, 42.0) and not is_correct(1450001, final_number("1450000"))
    assert not is_correct(None, 42.0)
    assert not is_correct(0.1 + 0.2, 0.3)  # arithmetic noise is not an answer anyone wrote


def test_grade_records_both_extractors_and_format_flags():
    row = grade("<start_working_out>6*7<end_working_out><SOLUTION>42</SOLUTION>", 42.0, "tagged")
    assert row["correct_strict"] and row["correct_flexible"] and row["has_answer"] and row["has_working_out"]
    loose = grade("I think it is 42", 42.0, "tagged")
    assert not loose["correct_strict"] and loose["correct_flexible"] and not loose["has_answer"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_extraction_never_raises(text):
    for fmt in ("tagged", "gsm8k", "boxed"):
        grade(text, 1.0, fmt)
    normalize_number(text)
    final_number(text)


ADVERSARIAL = {
    "spaces after the tag": "<SOLUTION>" + " " * 200_000,
    "repeated open tags": "<SOLUTION>" * 20_000,
    "unclosed confidence tags": "<confidence>" * 16_000,
    "unclosed working out": "<start_working_out>" * 10_000,
    "digits without end": "<SOLUTION>" + "1" * 200_000 + "x</SOLUTION>",
    "nested unclosed boxes": "\\boxed{" * 28_000,
    "a flood of numbers": "1.2,3 " * 40_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_grading_is_linear_on_200k_character_adversarial_completions(name):
    """A GRPO policy can emit any of these; grading each (every format) must take well under a second or so,
    not the minutes a super-linear regex takes (cubic on spaces after <SOLUTION> before)."""
    import time

    text = ADVERSARIAL[name]
    assert len(text) >= 120_000
    start = time.perf_counter()
    for fmt in ("tagged", "gsm8k", "boxed"):
        grade(text, 1.0, fmt)
    assert time.perf_counter() - start < 10  # generous: linear takes ~0.1 s; cubic took 95 s at 5,000 spaces
