"""Bad input, as a new user writes it against the newest features, is refused before any job or model load, in one
line naming the key, flag or file, with no traceback, and no input file changes. Config mistakes are checked as
the dry-run checks them (validation, then the planned stages); command lines run as a user runs them."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, arithmetic_rows, gsm_config, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.preflight import preflight

RFT_ROW = {"experiments": {"r": {"stages": ["prep_sft", "rft"]}}}


def refusal(*overlays: dict) -> str:
    """The one line the dry-run refuses the GSM-style pair (the rows and stages these mistakes name) with these
    overlays in."""
    raw = gsm_config()
    for overlay in overlays:
        raw = merge(raw, overlay)
    with pytest.raises(ConfigError) as caught:
        preflight(validate_config(raw))
    message = str(caught.value)
    assert "\n" not in message
    return message


def grpo_args(**args) -> dict:
    return {"stages": {"rl": {"training_args": args}}}


@pytest.mark.parametrize("overlays, expected", [
    # RFT's own keys, against each other and against the row
    ((RFT_ROW, {"stages": {"rft": {"samples": 4, "keep": 8}}}), "key 'stages.rft': keep: 8 is more than samples "
     "(4) can give"),
    ((RFT_ROW, {"experiments": {"r": {"overrides": {"rft": {"samples": 2}}}}}),
     "experiments.r.overrides.rft: keep: 4 is more than samples (2) can give"),
    ((RFT_ROW, {"stages": {"rft": {"max_new_tokens": 512, "max_length": 384}}}),
     "key 'stages.rft': max_new_tokens: 512 does not fit in max_length (384) with its prompt"),
    (({"experiments": {"r": {"stages": ["prep_sft", "rft", "rft"]}}},),
     "key 'experiments.r.stages': rft is listed twice"),
    (({"experiments": {"tagged": {"overrides": {"rft": {"keep": 2}}}}},),
     "experiments.tagged.overrides.rft: the row does not run rft"),
    # a sweep that cannot change what the row runs
    (({"experiments": {"s": {"stages": ["prep_sft"], "sweep": {"overrides.rl.beta": [0.0, 0.1]}}}},),
     "experiments.s.sweep: overrides.rl.beta: the row does not run rl (its stages: prep_sft)"),
    (({"experiments": {"s": {"sweep": {"lora.r": [8, 16]}}}},),
     "experiments.s.sweep: lora.r changes nothing rows s-r8 and s-r16 run"),
    # the RL stage's settings as TRL will read them
    ((grpo_args(reward_weights=[1.0]),), "stages.rl.training_args.reward_weights: 1 weight for the 2 rewards of "
     "experiments.tagged (format, correctness)"),
    ((grpo_args(generation_kwargs={"max_new_tokens": 512}),),
     "key 'stages.rl.training_args.generation_kwargs.max_new_tokens' is set by the pipeline: use "
     "stages.rl.max_completion_length"),
    ((grpo_args(generation_kwargs={"temperature": 0.3}),),
     "key 'stages.rl.training_args.generation_kwargs.temperature' is set by the pipeline: use "
     "stages.rl.temperature"),
    ((grpo_args(generation_kwargs={"top_k": 5}),),
     "key 'stages.rl.training_args.generation_kwargs.top_k' is set by the pipeline: use "
     "stages.rl.training_args.top_k"),
    ((grpo_args(top_k=-1),), "stages.rl.training_args.top_k: transformers refuses the RL stage's generation "
     "settings: `top_k` has to be a strictly positive integer"),
    ((grpo_args(min_p=2.0),), "stages.rl.training_args.min_p: transformers refuses the RL stage's generation "
     "settings: `min_p` has to be a float in the [0, 1] interval"),
    ((grpo_args(generation_kwargs={"typical_p": -0.5}),), "stages.rl.training_args.generation_kwargs: "
     "transformers refuses the RL stage's generation settings: `typical_p` has to be a float > 0 and < 1"),
    ((grpo_args(steps_per_generation=0),), "key 'stages.rl.training_args.steps_per_generation': must be >= 1"),
    ((grpo_args(num_iterations=0),), "key 'stages.rl.training_args.num_iterations': must be >= 1"),
    ((grpo_args(loss_type="ppo"),), "key 'stages.rl.training_args.loss_type': expected one of grpo, bnpo, dr_grpo"),
    ((grpo_args(scale_rewards="groups"),), "key 'stages.rl.training_args.scale_rewards': expected one of"),
    (({"experiments": {"a": {"rewards": ["binary", "binary"]}}},),
     "key 'experiments.a.rewards': binary is listed twice"),
    (({"experiments": {"a": {"eval_chat_template": [True, True]}}},),
     "key 'experiments.a.eval_chat_template': True is listed twice"),
    # files a task does not read
    (({"data": {"train_file": "nowhere.jsonl"}},),
     "key 'data.train_file': read only by data.source jsonl (the source is gsm_symbolic)"),
    (({"data": {"source": "gsm8k", "gsm8k_path": str(REPO), "test_file": "t.jsonl"}},),
     "key 'data.test_file': read only by data.source jsonl (the source is gsm8k)"),
    (({"data": {"gsm8k_path": str(REPO)}},), "key 'data.gsm8k_path': read only by data.source gsm8k"),
    # names echoed back
    (({"experiments": {"a": {"eval_protocols": ["lm-eval-gsm8kk"]}}},), "'lm-eval-gsm8kk'"),
])
def test_a_config_mistake_is_refused_at_the_dry_run_in_one_line_naming_the_key(overlays, expected):
    assert expected in refusal(*overlays)


def test_the_rl_methods_loss_types_are_those_trls_trainer_computes():
    """The loss_type choices come from the RL-method registry; TRL's config accepts any string and its trainer
    fails only at the first loss. The registry must list what the installed trainer computes."""
    import inspect
    import re

    from trl import GRPOTrainer

    from gsm_pipeline.training.methods import RL_METHODS

    computed = set(re.findall(r'loss_type == "([a-z_]+)"', inspect.getsource(GRPOTrainer)))
    listed = set(RL_METHODS["grpo"].choices["loss_type"])
    assert computed and computed <= listed
    assert listed <= computed | {"grpo", "bnpo", "dr_grpo", "dapo", "luspo"}  # the ones TRL tests in a list


def gsm(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["gsm-pipeline", *args], cwd=cwd or REPO, capture_output=True, text=True)


def refused_command(*args: str, expected: str, cwd=None) -> None:
    done = gsm(*args, cwd=cwd)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines and expected in lines[-1], done.stderr[-2000:]
    assert "runtime:" not in done.stderr  # refused before any model was loaded


@pytest.fixture
def files(tmp_path, tiny_data):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    return {"test": str(tiny_data / "test.jsonl"), "train": str(tiny_data / "train.jsonl"), "empty": str(empty)}


@pytest.mark.parametrize("args, expected", [
    (["evaluate", "--samples", "100"], "--samples: must be at most 64 (got 100)"),
    (["evaluate", "--samples", "8", "--temperature", "0"], "--temperature: must be > 0.0 (got 0.0)"),
    (["evaluate", "--max-new-tokens", "-5"], "--max-new-tokens: must be at least 1 (got -5)"),
    (["evaluate", "--batch-size", "0"], "--batch-size: must be at least 1 (got 0)"),
    (["evaluate", "--protocol", "lm-eval-gsm8k", "--confidence", "--answer-format", "boxed"],
     "--protocol lm-eval-gsm8k sets the whole prompt: --answer-format, --confidence cannot change it"),
    (["lm-eval", "--fewshot", "{train}", "--max-new-tokens", "0"], "--max-new-tokens: must be at least 1 (got 0)"),
    (["lm-eval", "--fewshot", "{empty}"], "{empty}: no rows to draw worked examples from"),
    (["lm-eval", "--fewshot", "{train}", "--limit", "-35"], "--limit: must be at least 1 (got -35)"),
    (["lm-eval", "--fewshot", "{train}", "--limit", "0"], "--limit: must be at least 1 (got 0)"),
])
@pytest.mark.dag
def test_a_bad_command_line_is_refused_in_one_line_before_any_model_loads(files, tiny_model, args, expected):
    args = [a.format(**files) for a in args]
    refused_command(*args, "--model", str(tiny_model), "--data", files["test"], "--out", str(tiny_model.parent /
                    "never"), expected=expected.format(**files))
    assert not (tiny_model.parent / "never").exists()


@pytest.mark.dag
def test_grade_refuses_an_output_under_a_file_and_a_file_with_no_valid_line(tmp_path):
    src = write_jsonl(tmp_path / "gen.jsonl", [{"completion": "#### 3", "answer": "3"}])
    before = src.read_bytes()
    refused_command("grade", str(src), "-o", str(src / "graded.jsonl"),
                    expected=f"-o {src / 'graded.jsonl'}: {src} is a file, not a folder")
    assert src.read_bytes() == before
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{broken\nnot json either\n")
    refused_command("grade", str(broken), "-o", str(tmp_path / "out.jsonl"),
                    expected=f"{broken}: no valid line to grade (2 malformed)")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_numeric_answer_in_a_users_jsonl_is_read_and_a_word_is_named(tmp_path):
    from gsm_pipeline.data import load_test_rows
    from gsm_pipeline.errors import DataError

    rows = load_test_rows(write_jsonl(tmp_path / "numbers.jsonl", [{"question": "2 + 2?", "answer": 4},
                                                                  {"question": "1/2 + 1?", "answer": 1.5}]))
    assert [r["answer"] for r in rows] == ["4", "1.5"]
    with pytest.raises(DataError, match=r"words.jsonl:1: answer 'four' has no final number"):
        load_test_rows(write_jsonl(tmp_path / "words.jsonl", [{"question": "2 + 2?", "answer": "four"}]))


def test_a_user_rows_file_with_numeric_answers_prepares_as_text_ones_do(tmp_path):
    from gsm_pipeline.config import validate_config as validate
    from gsm_pipeline.data import build_splits

    rows = [{"question": r["question"], "answer": int(r["answer"].rsplit(" ", 1)[1])} for r in arithmetic_rows(60, 1)]
    train, test = write_jsonl(tmp_path / "train.jsonl", rows[:50]), write_jsonl(tmp_path / "test.jsonl", rows[50:])
    cfg = validate({"data": {"source": "jsonl", "train_file": str(train), "test_file": str(test),
                             "prep_sft_size": 10, "full_sft_size": 10, "rl_size": 10, "test_size": 5}})
    splits, _ = build_splits(cfg.data)
    assert splits["test"][0]["answer"] == str(rows[50]["answer"])
    assert json.loads(train.read_text().splitlines()[0])["answer"] == rows[0]["answer"]  # the file is unchanged
