"""Answer formats are one registry: a new format is one FORMATS entry, and the config's choices, the prompt's
instruction, the SFT target, the stop strings, strict grading, the working-out check and the GRPO format reward
all follow it. The report pairs prompts by their fields, never by parsing a key."""
import re
import subprocess
import sys

import pytest

from gsm_pipeline.config import AnswerFormat, validate_config
from gsm_pipeline.grading.answers import grade
from gsm_pipeline.grading.formats import FORMATS
from gsm_pipeline.grading.formats import AnswerFormat as Format
from gsm_pipeline.grading.readers import text_before
from gsm_pipeline.grading.rewards import format_score
from gsm_pipeline.prompts import instruction_text, prompt_key, render_prompt, render_target, stop_strings
from gsm_pipeline.reporting.plots import plot_template_scatter

ANSWER_IS = re.compile(r"The answer is (-?[0-9.,]+)\.")
SAYS = Format(instruction="Solve it, then end with 'The answer is N.'",
              target="{reasoning}\nThe answer is {answer}.",
              strict=lambda text: float(m[-1].replace(",", "")) if (m := ANSWER_IS.findall(text)) else None,
              working_out=text_before("The answer is"), stop=("\nQuestion:",))


@pytest.fixture
def says(monkeypatch):
    monkeypatch.setitem(FORMATS, "says", SAYS)
    return {"answer_format": "says", "chat_template": False}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_formats_readers_resolve_to_functions_of_the_readers_module(fmt):
    """Readers are named (so that SFT does not depend on how answers are parsed): a misspelt name is caught here,
    not at the first evaluation or GRPO reward."""
    from gsm_pipeline.grading.answers import reader

    for named in (FORMATS[fmt].strict, FORMATS[fmt].working_out):
        assert callable(reader(named)), named
        reader(named)("")  # and reads an empty completion without raising


@pytest.mark.dag
def test_the_configs_answer_format_choices_are_the_registry():
    assert AnswerFormat.__args__ == tuple(FORMATS) == ("tagged", "gsm8k", "boxed")
    assert validate_config({"experiments": {"x": {"answer_format": "boxed"}}}).experiments["x"].answer_format == "boxed"
    # a format registered before the config is first imported (a fresh interpreter) is a choice of it
    registered = subprocess.run([sys.executable, "-c", (
        "from gsm_pipeline.grading.formats import FORMATS, AnswerFormat\n"
        "FORMATS['says'] = AnswerFormat(instruction='Say it.', target='{reasoning} {answer}', "
        "strict='gsm8k_answer', working_out='gsm8k_working_out')\n"
        "from gsm_pipeline.config import validate_config\n"
        "print(validate_config({'experiments': {'x': {'answer_format': 'says'}}}).prompt_key('x'))")],
        capture_output=True, text=True)
    assert registered.stdout == "says-chat\n", registered.stderr[-500:]


def test_a_new_format_is_one_entry_that_prompts_targets_stops_and_grading_follow(says):
    assert instruction_text(says) == SAYS.instruction
    assert render_prompt("What is 2 + 2?", says, tokenizer=None).startswith(SAYS.instruction + "\n\n")
    target = render_target("2 + 2 = 4", "4", says)
    assert target == "2 + 2 = 4\nThe answer is 4."
    confident = render_target("2 + 2 = 4", "4", {**says, "confidence": True}, 0.9)
    assert confident == target + "\n<confidence>0.90</confidence>"
    assert stop_strings(says) == ["\nQuestion:"]
    graded = grade(target, 4.0, "says")
    assert graded["correct_strict"] and graded["has_working_out"] and graded["extracted_strict"] == 4.0
    assert not grade("4", 4.0, "says")["has_answer"] and grade("4", 4.0, "says")["correct_flexible"]
    assert format_score(target, "says") > format_score("4", "says")
    assert prompt_key(says) == "says-raw"


@pytest.mark.parametrize("fmt, completion", [
    ("tagged", "<start_working_out>2 + 2 = 4<end_working_out><SOLUTION>4</SOLUTION>"),
    ("gsm8k", "2 + 2 = 4\n#### 4"),
    ("boxed", "2 + 2 = 4\nThe final answer is \\boxed{4}."),
])
def test_each_formats_taught_target_is_graded_correct_with_working_out(fmt, completion):
    assert render_target("2 + 2 = 4", "4", {"answer_format": fmt}) == completion
    graded = grade(completion, 4.0, fmt)
    assert graded["correct_strict"] and graded["has_working_out"]
    other = next(f for f in FORMATS if f != fmt)
    assert not grade(completion, 4.0, other)["has_answer"]  # each format reads only its own answer


def row(chat: bool, prompt: str, without: str, accuracy: float) -> dict:
    return {"experiment": "x", "stage": "base", "testset": "t", "prompt": prompt, "prompt_without_template": without,
            "eval_chat_template": chat, "train_chat_template": True, "accuracy_strict": accuracy}


def test_the_template_scatter_pairs_prompts_by_their_fields_not_by_their_key(tmp_path):
    # chat_template_kwargs give the chat prompt a hashed key suffix the raw prompt lacks: still one pair
    rows = [row(True, "tagged-chat-conf-1a2b3c", "tagged-raw-conf", 0.5), row(False, "tagged-raw-conf",
                                                                            "tagged-raw-conf", 0.25)]
    assert plot_template_scatter(rows, tmp_path / "a.png") and (tmp_path / "a.png").is_file()
    unpaired = [rows[0], row(False, "tagged-raw", "tagged-raw", 0.25)]
    assert not plot_template_scatter(unpaired, tmp_path / "b.png") and not (tmp_path / "b.png").exists()
