"""Rejection-sampling fine-tuning (RFT) is a stage of the stage table: it samples k completions per RL question
from prep SFT, keeps the correct ones (distinct, at most m per question), trains on them with the SFT trainer,
and shares the stage machinery: a chain-named folder, resume, the report's label and compute axis."""
import json
import shutil

import pytest

from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.grading.answers import final_number, grade
from gsm_pipeline.jobs import train_rft
from gsm_pipeline.layout import stage_run
from gsm_pipeline.reporting.comparison import stage_label
from gsm_pipeline.reporting.compute import stage_cost

RFT = {"samples": 8, "keep": 2, "max_new_tokens": 40, "batch_size": 32,
       "training_args": {"max_steps": 1, "per_device_train_batch_size": 2}}


def test_kept_samples_are_correct_finished_and_distinct_reasoning_at_most_m_per_question():
    def s(text, correct, truncated=False):
        return {"completion": text, "correct": correct, "truncated": truncated}

    graded = [[s("a 1", True), s("a  1", True), s("b 1", False), s("c 1", True), s("d 1", True)],
              [s("x", False), s("y", False)],
              [s("z\n2", True)],
              [s("Half of 48 is 48 / 2 = 24. So 24", True), s("48/2=24, the answer: 24", True),  # same equation
               s("2 * 12 = 24 in all", True), s("3 * 8 = 24 then cut", True, truncated=True)]]  # ran out of tokens
    # question 1: "a  1" repeats "a 1"; "b 1" is wrong; m = 2 stops before "d 1"
    assert train_rft.kept(graded, 2) == [["a 1", "c 1"], [], ["z\n2"], [graded[3][0]["completion"],
                                                                         graded[3][2]["completion"]]]
    assert train_rft.kept(graded, 5)[0] == ["a 1", "c 1", "d 1"]
    assert len(train_rft.kept(graded, 5)[3]) == 2  # one equation written twice, one sample truncated


@pytest.mark.parametrize("text, expected", [
    ("48 / 2 = 24 and 24 + 6 = 30", ("48/2=24", "24+6=30")),
    ("<<48/2=24>>24 clips", ("48/2=24",)),
    ("1,200 * 3 = 3,600.", ("1200*3=3600",)),
    ("(3 + 4) * 2 = 14", ("(3+4)*2=14",)),
    ("x = 5 and the total = 7", ()),  # no arithmetic: not an equation
    ("", ()),
])
def test_equations_are_each_equals_sign_with_its_arithmetic_and_its_number(text, expected):
    assert train_rft.equations(text) == expected


def test_an_rft_row_trains_prep_sfts_model_on_its_own_correct_distinct_samples_of_the_rl_questions(tiny_prep, tmp_path,
                                                                                                  capfd):
    cfg = validate_config({"experiments": {"x": {"stages": ["prep_sft", "rft"]}}, "stages": {"rft": RFT}})
    job = cfg.stage_job("x", "rft")
    prep = tmp_path / "prep"  # a copy: the test retrains it below (the DAG's is shared)
    shutil.copytree(tiny_prep / "model", prep)
    questions = tiny_prep / "data/rl.jsonl"
    trainer, tokenizer, record = train_rft.build_trainer(job, str(prep), str(questions), tmp_path / "ckpt")
    # recounted by hand from the journaled samples: sample j of question i is line i * 8 + j
    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    samples = {}
    for line in (tmp_path / "ckpt/rft_samples.partial.jsonl").read_text().splitlines():
        sample = json.loads(line)
        samples[sample["index"]] = sample["completion"]
    assert sorted(samples) == list(range(8 * len(rows)))
    expected = []
    for i, row in enumerate(rows):
        mine = []
        for j in range(8):
            text = samples[i * 8 + j]
            right = grade(text, final_number(row["answer"]), "tagged")["correct_strict"]
            if right and " ".join(text.split()) not in {" ".join(t.split()) for t in mine} and len(mine) < 2:
                mine.append(text)
        expected += mine
    assert 0 < len(expected) < 8 * len(rows)  # some right, some not: the filter is not vacuous
    assert record["sampled"]["kept"] == len(trainer.train_dataset) == len(expected)
    assert record["sampled"]["sampled"] == 8 * len(rows) and record["sampled"]["generated_tokens"] > 0
    trained = sorted(tokenizer.decode(ids) for ids in trainer.train_dataset["input_ids"])
    assert all(any(c in t for c in expected) for t in trained)  # every training row holds a kept completion
    trainer.train()
    assert trainer.state.global_step == 1
    # a second start (a killed job, restarted) reads the journal instead of sampling again
    capfd.readouterr()
    train_rft.build_trainer(job, str(prep), str(questions), tmp_path / "ckpt")
    assert f"{8 * len(rows)} generations already done" in capfd.readouterr().err
    # a retrained parent (its weights' files changed) samples afresh: its samples are not the old model's
    (prep / "model.safetensors").write_bytes((prep / "model.safetensors").read_bytes())
    train_rft.build_trainer(job, str(prep), str(questions), tmp_path / "ckpt")
    assert "generations already done" not in capfd.readouterr().err


def test_with_sft_rows_rft_trains_on_prep_sfts_rows_beside_its_kept_samples(tiny_prep, tmp_path):
    cfg = validate_config({"experiments": {"x": {"stages": ["prep_sft", "rft"]}},
                           "stages": {"rft": {**RFT, "with_sft_rows": True}}})
    job = cfg.stage_job("x", "rft")
    prep, data = tiny_prep / "model", tiny_prep / "data"
    trainer, _, record = train_rft.build_trainer(job, str(prep), str(data / "rl.jsonl"), tmp_path / "ckpt",
                                                 sft_rows=str(data / "prep_sft.jsonl"))
    sft_rows = len((data / "prep_sft.jsonl").read_text().splitlines())
    assert record["sampled"]["sft_rows"] == sft_rows
    assert len(trainer.train_dataset) == sft_rows + record["sampled"]["kept"]
    off = validate_config({"experiments": {"x": {"stages": ["prep_sft", "rft"]}}, "stages": {"rft": RFT}})
    assert "with_sft_rows" not in off.stage_job("x", "rft").stamp()  # off: the chains from before it stay


def test_rft_is_a_stage_a_row_opts_into_chain_named_after_prep_sft_and_labelled_rft():
    cfg = validate_config({"experiments": {"tagged": {}, "x": {"stages": ["prep_sft", "rft"]}}})
    assert cfg.experiments["tagged"].stages == ["prep_sft", "full_sft", "rl"]  # not run unless asked for
    assert stage_run(cfg, "x", "rft").startswith("rft-")
    assert stage_run(cfg, "x", "prep_sft") == stage_run(cfg, "tagged", "prep_sft")  # shares its parent
    assert cfg.experiments["x"].parent_of("rft") == "prep_sft"
    assert stage_label("rft", set()) == "RFT"
    with pytest.raises(ConfigError, match="rft needs prep_sft"):
        validate_config({"experiments": {"x": {"stages": ["rft"]}}})
    with pytest.raises(ConfigError, match="stages.rft.keep"):
        validate_config({"stages": {"rft": {"keep": 0}}})


def test_rfts_samples_count_as_generated_tokens_from_its_first_step(tmp_path):
    history = [{"runtime": {"parameters": 10, "samples_per_step": 2, "sampled": {"generated_tokens": 100}}},
               {"step": 1, "loss": 1.0, "num_tokens": 50}, {"step": 2, "loss": 0.5, "num_tokens": 80}]
    cost = stage_cost("rft-x", history, tmp_path, 0)
    assert cost["generated_tokens"] == 100 and cost["trained_tokens"] == 80
    assert cost["flops"] == 6 * 10 * 80 + 2 * 10 * 100
    assert cost["by_step"][0] == (0.0, 100.0) and cost["by_step"][1] == (50.0, 100.0)
