"""lm-evaluation-harness's gsm8k protocol and graders beside this project's: the prompt is lm-eval's own (read from the
installed package, worked examples drawn as lm-eval draws them), and on a corpus of GSM8K-style answers the two
graders agree except where a difference is intended, listed here with its reason."""
import random
from importlib import resources

import pytest
import yaml

from conftest import arithmetic_rows
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.grading import harness
from gsm_pipeline.grading.answers import final_number, grade
from gsm_pipeline.prompts import prompt_key, stop_strings
from gsm_pipeline.settings.prompt import PromptSpec

GOLDS = ["16", "0", "72", "-5", "1000", "1450001", "0.5", "2.25"]


def row_with(gold: str) -> dict:
    return {"question": "q", "answer": gold, "solution": f"some working\n#### {gold}"}


def spelled(gold: str) -> dict[str, str]:
    """The same correct answer as a model may write it, each a mutation of the reference solution."""
    value = float(gold)
    commas = f"{int(value):,}" if value.is_integer() else gold
    return {"plain": f"So the answer is {gold}.\n#### {gold}", "dollar": f"It costs ${gold}.\n#### {gold}",
            "commas": f"#### {commas}", "trailing period": f"#### {gold}.", "units": f"#### {gold} dollars",
            "words after": f"#### {gold} is the answer", "no marker": f"The answer is {gold}.",
            "marker, no space": f"####{gold}", "plus sign": f"#### +{gold}",
            "wrong then right": f"#### {value + 1:g}\nWait, no.\n#### {gold}",
            "right then wrong": f"#### {gold}\nWait, no.\n#### {value + 1:g}",
            "off by one": f"#### {value + 1:g}",
            "decimal zeros": f"#### {gold}.00" if "." not in gold else f"#### {gold}0",
            "confidence": f"#### {gold}\n<confidence>0.9</confidence>",
            "next question": f"#### {gold}\n\nQuestion: Tom has 3 cats.",
            "empty": ""}


# Where the two graders are meant to differ: (mutation, grader) -> (ours, lm-eval's), and why.
INTENDED = {
    # Ours compares exact numbers; lm-eval compares strings after removing ',', '$' and a final '.'.
    ("decimal zeros", "strict"): (True, False),
    ("decimal zeros", "flexible"): (True, False),
    # Several '#### ' markers: ours reads the last (a model that corrects itself), lm-eval's strict-match the first.
    ("wrong then right", "strict"): (True, False),
    ("right then wrong", "strict"): (False, True),
    # A stated confidence is never the answer to ours; lm-eval's flexible-extract takes it as the last number.
    ("confidence", "flexible"): (True, False),
    # lm-eval's backend cuts a response at the task's stops ('Question:') before grading; ours reads the whole
    # completion (which the evaluation already stops at its prompt's stop strings).
    ("next question", "flexible"): (False, True),
}


def both(completion: str, gold: str) -> dict[str, tuple[bool, bool]]:
    ours = grade(completion, final_number(gold), "gsm8k")
    theirs = harness.grade([completion], [row_with(gold)])[0]
    return {kind: (ours[f"correct_{kind}"], theirs[f"correct_lmeval_{kind}"]) for kind in ("strict", "flexible")}


def test_on_gsm8k_style_answers_the_two_graders_differ_only_where_intended():
    unexplained = []
    for gold in GOLDS:
        for mutation, completion in spelled(gold).items():
            for kind, (ours, theirs) in both(completion, gold).items():
                expected = INTENDED.get((mutation, kind))
                if (expected is None and ours != theirs) or (expected is not None and (ours, theirs) != expected):
                    unexplained.append(f"{mutation!r} gold {gold} {kind}: ours {ours}, lm-eval {theirs}")
    assert not unexplained, "\n".join(unexplained)


def test_the_reference_solutions_are_right_by_both_graders_and_a_wrong_number_by_neither():
    for row in arithmetic_rows(20, seed=3):
        gold = row["answer"].rsplit("#### ", 1)[1]
        assert both(row["answer"], gold) == {"strict": (True, True), "flexible": (True, True)}
        wrong = row["answer"].replace(f"#### {gold}", f"#### {int(gold) + 1}")
        assert both(wrong, gold) == {"strict": (False, False), "flexible": (False, False)}


def test_the_protocol_is_lm_evals_gsm8k_task_as_the_installed_package_ships_it():
    shipped = yaml.safe_load((resources.files("lm_eval") / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    spec = PromptSpec.protocol_spec("jsonl", "lm-eval-gsm8k")
    assert prompt_key(spec) == "lm-eval-gsm8k" and spec.answer_format == "gsm8k" and not spec.chat_template
    assert stop_strings(spec) == shipped["generation_kwargs"]["until"]
    assert shipped["num_fewshot"] == 5 and shipped["doc_to_text"] == "Question: {{question}}\nAnswer:"


def test_each_test_row_gets_five_worked_examples_drawn_as_lm_eval_draws_them():
    pool = [{**r, "solution": r["answer"]} for r in arithmetic_rows(40, seed=1)]
    tests = [{**r, "solution": r["answer"]} for r in arithmetic_rows(3, seed=2)]
    contexts = harness.contexts("lm-eval-gsm8k", tests, pool)
    draws = random.Random(1234)  # lm-eval's default few-shot seed, one generator through the test set in order
    for row, context in zip(tests, contexts):
        shots = draws.sample(pool, 5)
        expected = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
        assert context == expected + f"Question: {row['question']}\nAnswer:"
    assert len(set(contexts)) == 3


def test_prepared_rows_are_put_to_the_model_as_lm_eval_puts_its_own_files(tmp_path):
    """The rows data preparation writes (answer '8', the worked solution apart) give the very prompts lm-eval
    builds when it loads the source files itself: the worked examples keep their working out and calculator
    annotations, and nothing of this project's mapping of rows to documents is on lm-eval's side."""
    from conftest import write_jsonl
    from gsm_pipeline.data import load_test_rows

    raw = [{"question": r["question"], "answer": r["answer"].replace(" = ", " = <<calc>>")}
           for r in arithmetic_rows(40, seed=1)]
    train, test = write_jsonl(tmp_path / "train.jsonl", raw[:30]), write_jsonl(tmp_path / "test.jsonl", raw[30:])
    pool, rows = load_test_rows(train), load_test_rows(test)
    assert all(r["answer"] != r["solution"] for r in pool)  # prepared: the final number apart from the working
    ours = harness.contexts("lm-eval-gsm8k", rows, pool)
    task = harness.task_from_files("lm-eval-gsm8k", str(test), str(train))
    task.build_all_requests(limit=None, rank=0, world_size=1)
    theirs = {inst.doc_id: inst.args[0] for inst in task.instances}
    assert ours == [theirs[i] for i in range(len(rows))]
    assert "<<calc>>" in ours[0] and ours[0].count("####") == 5


def test_an_experiment_evaluates_under_a_protocol_and_a_prompt_setting_cannot_change_it():
    cfg = validate_config({"experiments": {"x": {"answer_format": "gsm8k", "eval_protocols": ["lm-eval-gsm8k"]}}})
    assert "lm-eval-gsm8k" in cfg.prompts() and cfg.prompts()["lm-eval-gsm8k"].protocol == "lm-eval-gsm8k"
    with pytest.raises(ConfigError, match="eval_protocols"):
        validate_config({"experiments": {"x": {"eval_protocols": ["lm-eval-gsm8k-typo"]}}})
    with pytest.raises(ValueError, match="chat_template cannot change it"):
        PromptSpec(protocol="lm-eval-gsm8k", answer_format="gsm8k", chat_template=True)
