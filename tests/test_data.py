"""Data preparation: disjoint splits, held-out templates never trained on, clear errors on bad rows."""
import pytest

from conftest import write_jsonl
from gsm_pipeline.config import DataConfig
from gsm_pipeline.data import build_splits, format_number
from gsm_pipeline.errors import DataError


@pytest.fixture(scope="module")
def symbolic():
    return build_splits(DataConfig(prep_sft_size=16, full_sft_size=32, rl_size=16, test_size=16))[0]


def test_gsm_symbolic_rows_are_normalised(symbolic):
    row = symbolic["prep_sft"][0]
    assert set(row) == {"id", "question", "reasoning", "answer", "solution", "template", "source"}
    assert "####" not in row["reasoning"] and row["reasoning"].strip()
    # the generator's own worked solution, as lm-eval's GSM8K task shows it in worked examples and grades against
    assert row["solution"].rstrip().endswith(f"#### {row['answer']}")
    for split in symbolic.values():  # answers are normalised numbers: "18", never "18.0", "$18" or "1,800"
        assert all(r["answer"] == format_number(float(r["answer"])) for r in split)


def test_splits_are_disjoint_and_held_out_templates_are_never_trained_on(symbolic):
    ids = [r["id"] for name, split in symbolic.items() if name != "fewshot" for r in split]
    assert len(ids) == len(set(ids))
    # the few-shot pool (lm-eval's train split) is every training row in the generator's order, no test row
    trained_ids = {r["id"] for s in ("prep_sft", "full_sft", "rl") for r in symbolic[s]}
    pool = [r["id"] for r in symbolic["fewshot"]]
    assert set(pool) == trained_ids and pool == sorted(pool, key=lambda i: int(i.rsplit("-", 1)[1]))
    trained = {r["template"] for s in ("prep_sft", "full_sft", "rl") for r in symbolic[s]}
    assert {r["template"] for r in symbolic["symbolic_heldout"]}.isdisjoint(trained)
    tested_id = {r["template"] for r in symbolic["symbolic_id"]}
    assert tested_id.isdisjoint(r["template"] for r in symbolic["symbolic_heldout"])
    assert len(symbolic["symbolic_id"]) == len(symbolic["symbolic_heldout"]) == 16


def test_same_seed_same_data():
    cfg = DataConfig(prep_sft_size=4, full_sft_size=4, rl_size=4, test_size=4)
    assert build_splits(cfg)[0] == build_splits(cfg)[0]


def jsonl_config(tmp_path, train_rows, test_rows=None, **kw):
    train = write_jsonl(tmp_path / "train.jsonl", train_rows) if train_rows is not None else tmp_path / "none.jsonl"
    test = write_jsonl(tmp_path / "test.jsonl", test_rows or [{"question": "q", "answer": "#### 1"}])
    return DataConfig(source="jsonl", train_file=str(train), test_file=str(test), prep_sft_size=1,
                      full_sft_size=1, rl_size=1, **kw)


GOOD = [{"question": f"q{i}", "answer": f"r\n#### {i}"} for i in range(3)]


def test_local_jsonl_rows_become_splits(tmp_path):
    splits, skipped = build_splits(jsonl_config(tmp_path, GOOD))
    assert [len(splits[s]) for s in ("prep_sft", "full_sft", "rl", "test")] == [1, 1, 1, 1]
    assert skipped == {}


def test_prepared_answers_keep_every_digit_and_write_each_number_one_way(tmp_path):
    golds = ["12345678901234567", "1,200.50", "72.0", "-0.750", "$1,000,000"]
    test = [{"question": f"q{i}", "answer": f"r\n#### {g}"} for i, g in enumerate(golds)]
    splits, _ = build_splits(jsonl_config(tmp_path, GOOD, test_rows=test, test_size=len(golds)))
    assert [r["answer"] for r in splits["test"]] == ["12345678901234567", "1200.5", "72", "-0.75", "1000000"]


def test_bad_json_line_is_named_by_file_and_line(tmp_path):
    cfg = jsonl_config(tmp_path, GOOD)
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{not json\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid JSON"):
        build_splits(cfg)


@pytest.mark.parametrize("row, message", [
    ({"answer": "#### 1"}, "row has no 'question'"),
    ({"question": "q"}, "row has no 'answer'"),
])
def test_row_without_question_or_answer_is_named(tmp_path, row, message):
    with pytest.raises(DataError, match=rf"train.jsonl:2: {message}"):
        build_splits(jsonl_config(tmp_path, [GOOD[0], row]))


def test_answer_without_final_number_is_skipped_by_line_and_counted_or_an_error(tmp_path, capsys):
    rows = GOOD + [{"question": "q", "answer": "no number here"}]
    _, skipped = build_splits(jsonl_config(tmp_path, rows))
    assert list(skipped.values()) == [1]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {tmp_path / 'train.jsonl'}:4: row skipped, its answer has no final number "
        "(data.missing_answer: skip)"]
    with pytest.raises(DataError, match=r"train.jsonl:4: answer 'no number here' has no final number"):
        build_splits(jsonl_config(tmp_path, rows, missing_answer="error"))


def test_missing_file_and_too_few_rows_are_clear(tmp_path):
    with pytest.raises(DataError, match="none.jsonl: dataset file not found"):
        build_splits(jsonl_config(tmp_path, None))
    with pytest.raises(DataError, match=r"train.jsonl: data.prep_sft_size=1 \+ data.full_sft_size=1 \+ "
                                        r"data.rl_size=1 exceeds its 2 usable training rows$"):
        build_splits(jsonl_config(tmp_path, GOOD[:2]))


def test_an_empty_training_file_is_named_and_said_to_be_empty(tmp_path):
    with pytest.raises(DataError, match=r"train.jsonl: .* exceeds its 0 usable training rows; it holds no rows$"):
        build_splits(jsonl_config(tmp_path, []))
    rows = [{"question": "q", "answer": "none"}] * 2
    with pytest.raises(DataError, match=r"exceeds its 0 usable training rows, 2 more skipped without a final "
                                        r"number$"):
        build_splits(jsonl_config(tmp_path, rows))


@pytest.mark.parametrize("answer", ["1e400", "9" * 400, "-" + "1" * 65])
def test_an_answer_beyond_float_range_stops_preparation_naming_the_row(tmp_path, answer):
    rows = GOOD + [{"question": "q", "answer": f"r\n#### {answer}"}]
    with pytest.raises(DataError, match=r"train.jsonl:4: answer .* is beyond the range the grader compares"):
        build_splits(jsonl_config(tmp_path, rows))
    with pytest.raises(DataError, match=r"test.jsonl:2: answer .* is beyond the range the grader compares"):
        build_splits(jsonl_config(tmp_path, GOOD, test_rows=[GOOD[0], rows[-1]]))


def test_non_utf8_bytes_in_a_data_file_are_named_by_file_and_line(tmp_path):
    cfg = jsonl_config(tmp_path, GOOD)
    (tmp_path / "train.jsonl").write_bytes(b'{"question": "q", "answer": "#### 1"}\n{"question": "\xe9"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not UTF-8 text \(byte 0xe9 at column 15\)"):
        build_splits(cfg)


def test_a_test_set_smaller_than_asked_is_said_out_loud(tmp_path, capsys):
    from gsm_pipeline.jobs import prepare_data

    cfg = jsonl_config(tmp_path, GOOD, test_rows=[GOOD[0]] * 3, test_size=5)
    prepare_data.main(["--config", cfg.model_dump_json(), "--out", str(tmp_path / "out")])
    assert "warning: test set 'test' has 3 rows, fewer than data.test_size=5" in capsys.readouterr().err


def test_extra_test_files_become_named_test_sets(tmp_path):
    extra = write_jsonl(tmp_path / "gsm8k_test.jsonl", [{"question": "q", "answer": "a\n#### 3"}] * 5)
    cfg = DataConfig(prep_sft_size=2, full_sft_size=2, rl_size=2, test_size=4,
                     extra_test_files={"gsm8k": str(extra)})
    assert cfg.test_sets() == ["symbolic_id", "symbolic_heldout", "gsm8k"]
    splits, _ = build_splits(cfg)
    assert len(splits["gsm8k"]) == 4 and splits["gsm8k"][0]["answer"] == "3"
    with pytest.raises(ValueError, match="not repeat another test set"):
        DataConfig(extra_test_files={"symbolic_id": str(extra)})


def test_gsm8k_from_a_local_folder_and_a_clear_error_without_network(tmp_path, monkeypatch):
    rows = [{"question": f"q{i}", "answer": f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}"} for i in range(8)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:3])
    cfg = DataConfig(source="gsm8k", gsm8k_path=str(tmp_path), prep_sft_size=2, full_sft_size=2, rl_size=2)
    splits, _ = build_splits(cfg)
    assert cfg.test_sets() == ["gsm8k"] and len(splits["gsm8k"]) == 3
    assert "<<" not in splits["prep_sft"][0]["reasoning"]  # calculator annotations removed
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="openai/gsm8k: cannot load from the hub .*set data.gsm8k_path"):
        build_splits(DataConfig(source="gsm8k", prep_sft_size=2, full_sft_size=2, rl_size=2))
