"""The `gsm-pipeline` command outside the DAG: evaluate any model folder, re-grade generations."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.dag  # starts Snakemake or a command in a subprocess


def run(*args, cwd=None):
    return subprocess.run(["gsm-pipeline", *args], cwd=cwd or REPO, capture_output=True, text=True)


def test_evaluate_any_model_folder(tiny_model, tiny_data, tmp_path):
    done = run("evaluate", "--model", str(tiny_model), "--data", str(tiny_data / "test.jsonl"),
               "--max-new-tokens", "8", "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "eval/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"completion", "extracted_strict", "correct_flexible"} <= set(rows[0])
    assert metrics["n"] == 8 and metrics["accuracy_strict"] == sum(r["correct_strict"] for r in rows) / 8
    assert "generating" in done.stderr and "8/8" in done.stderr  # progress in completions, as it generates


def test_evaluate_names_a_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    done = run("evaluate", "--model", str(tmp_path), "--data", "x.jsonl")
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path}: model folder has no weights (*.safetensors)"


def test_grade_regrades_and_names_malformed_lines(tmp_path):
    src = tmp_path / "gen.jsonl"
    src.write_text("\n".join([
        json.dumps({"completion": "<SOLUTION>72</SOLUTION>", "answer": "48 + 24 = 72\n#### 72"}),
        "{broken",
        json.dumps({"completion": "it is 5", "answer": "6"}),
    ]) + "\n")
    assert "strict 0.500  flexible 0.500  n=2" in run("grade", str(src), "-o", str(tmp_path / "out.jsonl")).stdout
    done = run("grade", str(src), "-o", str(tmp_path / "out.jsonl"), "--lm-eval")
    assert "gen.jsonl:2: not valid JSON" in done.stderr
    # lm-eval's gsm8k graders beside ours: the tagged answer has no '#### ', so its strict-match finds none
    assert "strict 0.500  flexible 0.500  lm-eval strict 0.000  lm-eval flexible 0.500  n=2" in done.stdout
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["correct_strict"] for r in rows] == [True, False]
    assert rows[1]["extracted_flexible"] == 5.0 and rows[0]["confidence"] is None
    assert [r["extracted_lmeval_strict"] for r in rows] == ["[invalid]", "[invalid]"]
    assert [(r["extracted_lmeval_flexible"], r["correct_lmeval_flexible"]) for r in rows] == [("72", True),
                                                                                              ("5", False)]


@pytest.mark.parametrize("args", [["--help"], []])
def test_help_lists_the_users_commands_first_and_the_workflows_steps_apart(args):
    out = run(*args).stdout
    users, workflow = out.split("the workflow's own steps")
    for command in ("evaluate", "grade", "lm-eval", "validate", "fetch-model"):
        assert f"  {command} " in users
    for command in ("prepare-data", "train-sft", "train-rl", "train-rft", "train-distill", "report"):
        assert f"  {command} " in workflow


def test_version_defaults_in_help_did_you_mean_and_validate_without_arguments(tmp_path):
    assert run("--version").stdout.startswith("gsm-pipeline ")
    assert "(default: tagged)" in " ".join(run("grade", "--help").stdout.split())
    assert "did you mean 'evaluate'?" in run("evalute").stderr
    done = run("validate")  # in the project: config.yaml
    assert done.returncode == 0 and done.stdout.startswith("config.yaml: ok")


def test_fetch_model_says_how_to_work_offline_when_a_hub_id_cannot_be_reached(tmp_path):
    import os

    done = subprocess.run(["gsm-pipeline", "fetch-model", "--source", "nobody/no-such-model", "--out",
                           str(tmp_path / "m")], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: nobody/no-such-model: cannot load") and "local folder" in lines[-1]
    assert not (tmp_path / "m").exists()


def test_fetch_model_copies_a_local_folder_into_a_loadable_safetensors_model(tiny_model, tmp_path):
    done = run("fetch-model", "--source", str(tiny_model), "--out", str(tmp_path / "m"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()


def test_fetch_model_names_a_missing_local_folder(tmp_path):
    done = run("fetch-model", "--source", str(tmp_path / "no-model"), "--out", str(tmp_path / "m"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'no-model'}: model folder not found"


def test_grade_never_overwrites_its_input(tmp_path):
    src = tmp_path / "gen.jsonl"
    text = json.dumps({"completion": "<SOLUTION>1</SOLUTION>", "answer": "1"}) + "\n{broken\n"
    src.write_text(text)
    done = run("grade", str(src), "-o", str(src))
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
        f"error: {src}: -o names the input file; grading would overwrite it (give another output)")
    assert src.read_text() == text  # every input line kept, the malformed one too


def test_grade_names_gold_answers_that_are_not_numbers_and_grades_them_wrong(tmp_path):
    src = tmp_path / "gen.jsonl"
    src.write_text("".join(json.dumps({"completion": "<SOLUTION>3</SOLUTION>", "answer": a}) + "\n"
                           for a in ["3", None, "", "three"]))
    done = run("grade", str(src), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert [w.split(":")[2] for w in warned] == ["2", "3", "4"] and "None" in warned[0] and "'three'" in warned[2]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["correct_strict"] for r in rows] == [True, False, False, False]


@pytest.mark.parametrize("content,expected", [
    (b"", "no rows to grade (n=0)"),
    (b'{"completion": "a", "answer": "1"}\n\xff\xfe\x00binary\n',
     "gen.jsonl:2: not UTF-8 text (byte 0xff at column 1)"),
])
def test_grade_says_in_one_line_what_is_wrong_with_an_empty_or_binary_input(tmp_path, content, expected):
    src = tmp_path / "gen.jsonl"
    src.write_bytes(content)
    done = run("grade", str(src), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and expected in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_grade_output_that_is_a_folder_is_named(tmp_path):
    src = tmp_path / "gen.jsonl"
    src.write_text(json.dumps({"completion": "1", "answer": "1"}) + "\n")
    done = run("grade", str(src), "-o", str(tmp_path))
    assert done.returncode == 1 and done.stderr.strip() == f"error: {tmp_path}: is a folder; give a file name to write"


def test_grade_imports_neither_lm_eval_nor_datasets_unless_asked(tmp_path):
    """Grading a file is a second's work: lm-eval (an optional extra) and datasets load only for --lm-eval."""
    src = tmp_path / "gen.jsonl"
    src.write_text(json.dumps({"completion": "<SOLUTION>7</SOLUTION>", "answer": "7"}) + "\n")
    code = ("import sys; from gsm_pipeline.jobs import grade; grade.main([sys.argv[1], '-o', sys.argv[2]]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'lm_eval', 'datasets', 'torch'}))")
    done = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out.jsonl")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[]"


def test_without_lm_eval_an_evaluation_carries_our_graders_and_says_lm_evals_are_absent(tiny_model, tiny_data,
                                                                                         tmp_path, monkeypatch):
    from gsm_pipeline.grading import protocols
    from gsm_pipeline.jobs import evaluate

    monkeypatch.setattr(protocols, "version", lambda: None)  # as on an install without the lm-eval extra
    evaluate.main(["--model", str(tiny_model), "--data", str(tiny_data / "test.jsonl"), "--limit", "2",
                   "--max-new-tokens", "4", "--out", str(tmp_path / "eval")])
    row = json.loads((tmp_path / "eval/predictions.jsonl").read_text().splitlines()[0])
    assert "correct_strict" in row and "correct_lmeval_strict" not in row
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["lm_eval"] is None and "accuracy_lmeval_strict" not in metrics and metrics["n"] == 2


def test_an_adhoc_evaluation_in_the_project_asks_the_configured_tasks_problems(tiny_model, tmp_path, monkeypatch):
    """In the project, `evaluate` asks as config.yaml's first row asks (its task, answer format, template and
    instruction) and, without --data, the first test set of that task; elsewhere, generated gsm_symbolic problems
    in the settings' own prompt."""
    from gsm_pipeline.jobs import evaluate

    for folder, task, question, asked in (
            (tmp_path / "project", "reasoning_gym", "Calculate ", ("gsm8k", False, False)),
            (tmp_path / "elsewhere", "gsm_symbolic", "", ("tagged", True, True))):
        folder.mkdir()
        if task == "reasoning_gym":
            (folder / "config.yaml").write_text((REPO / "config.yaml").read_text())
        monkeypatch.chdir(folder)
        evaluate.main(["--model", str(tiny_model), "--limit", "2", "--max-new-tokens", "2", "--out", "eval"])
        metrics = json.loads((folder / "eval/metrics.json").read_text())
        assert (metrics["data"], metrics["prompt"]["task"], metrics["n"]) == (f"{task} default", task, 2)
        prompt = {"chat_template": True, "instruction": True, **metrics["prompt"]}  # the record omits defaults
        assert (prompt["answer_format"], prompt["chat_template"], prompt["instruction"]) == asked
        first = json.loads((folder / "eval/predictions.jsonl").read_text().splitlines()[0])
        assert first["question"].startswith(question)


@pytest.mark.parametrize("flags, reads", [(["--config", "{}"], False), ([], True)])
def test_a_dag_evaluation_neither_reads_the_project_config_nor_imports_its_task(flags, reads, tmp_path):
    """The DAG passes each evaluation its settings (--config): reading config.yaml's task would import
    reasoning-gym in every evaluation job (on a machine that has not checked that config before). An ad-hoc
    evaluation reads it."""
    code = ("import sys; from gsm_pipeline.jobs import evaluate; "
            f"d = evaluate.project_defaults(read=not {flags!r}); "
            "print(d['_from'], d['_data'].source, 'reasoning_gym' in sys.modules)")
    # this checkout's package, installed or not; an empty cache of checked configs
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = "config.yaml reasoning_gym True" if reads else "None gsm_symbolic False"
    assert done.stdout.split("\n")[-2] == expected


def test_validate_command_checks_a_config_and_writes_the_schema_the_repository_carries(tmp_path):
    done = run("validate", "config.yaml", "--schema", str(tmp_path / "schema.json"))
    assert done.returncode == 0 and done.stdout.splitlines()[0] == "config.yaml: ok (2 experiments)"
    table = done.stdout.split("each stage as it will train")[0]  # then each stage's settings (test_preflight.py)
    folders = [line.strip() for line in table.splitlines()[2:]]  # where each stage lives, for targets
    assert [f.split(":")[0] for f in folders] == ["arith prep_sft", "arith full_sft", "arith rl",
                                                  "arith_random prep_sft", "arith_random rl"]
    assert all(re.fullmatch(r"\S+ (\w+): results/\1-[0-9a-f]{8}/model", f) for f in folders)
    assert (tmp_path / "schema.json").read_text() == (REPO / "workflow/schemas/config.schema.json").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  rl:\n    temprature: 0.7\n")
    done = run("validate", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(
        "unknown key 'stages.rl.temprature'; did you mean 'temperature'?")
