"""Sampled evaluation: maj@n votes, best-of-n follows the scorer, pass@n is any-correct,
each from the first n samples; hand-built groups make the expected numbers obvious."""
import json
import math
import statistics
import subprocess

import pytest

from conftest import REPO
from gsm_pipeline.generation.sampling import question_outcomes, sample_metrics, vote


def s(answer, gold, score):
    return {"extracted_strict": answer, "correct_strict": answer == gold, "score": score}


def test_vote_ignores_unparseable_answers_and_breaks_ties_by_first_appearance():
    assert vote([None, 3.0, 5.0, 5.0]) == 5.0
    assert vote([3.0, 5.0]) == 3.0
    assert vote([None, None]) is None


@pytest.mark.parametrize("gold", ["1/3", "12345678901234567.5", "0.1", "-2/7"])
def test_a_unanimous_correct_vote_is_correct_for_any_exact_gold(gold):
    """The vote counts exact values as the grader does: no answer is lost to a float that cannot hold it."""
    from gsm_pipeline.grading.answers import grade
    from gsm_pipeline.grading.numerals import exact_number

    truth = exact_number(gold)
    graded = [{**grade(f"<SOLUTION>{gold}</SOLUTION>", truth, "tagged"), "score": -i} for i in range(4)]
    assert all(g["correct_strict"] for g in graded)
    assert question_outcomes(graded, truth, 4) == {"pass": True, "maj": True, "best": True}
    assert sample_metrics({"q": graded}, {"q": truth})["unique_answers"] == {"q": 1}
    assert json.loads(json.dumps(graded))[0]["extracted_strict"] == graded[0]["extracted_strict"]  # a JSON record


def test_outcomes_use_only_the_first_n_samples():
    samples = [s(1.0, 7.0, -0.1), s(7.0, 7.0, -0.9), s(7.0, 7.0, -0.5), s(2.0, 7.0, -0.2)]
    assert question_outcomes(samples, 7.0, 1) == {"pass": False, "maj": False, "best": False}
    assert question_outcomes(samples, 7.0, 2) == {"pass": True, "maj": False, "best": False}  # tie -> 1.0 first
    assert question_outcomes(samples, 7.0, 4) == {"pass": True, "maj": True, "best": False}  # scorer picks 1.0


def test_sample_metrics_report_curves_and_what_the_vote_or_scorer_lost():
    groups = {"a": [s(7.0, 7.0, -0.1), s(7.0, 7.0, -0.2)],           # always right
              "b": [s(1.0, 2.0, -0.1), s(2.0, 2.0, -0.3)]}           # right only by its second sample
    out = sample_metrics(groups, {"a": 7.0, "b": 2.0})
    assert (out["pass@1"], out["pass@2"]) == (0.5, 1.0)
    assert (out["maj@1"], out["maj@2"]) == (0.5, 0.5)
    assert out["best@2"] == 0.5 and "pass@4" not in out
    assert out["lost_by_vote"] == ["b"] and out["lost_by_scorer"] == ["b"]
    assert out["unique_answers"] == {"a": 1, "b": 2}
    # the unbiased pass@1 counts b's second sample too: (1 + 1/2) / 2, where the first-sample pass@1 says 0.5
    assert {k: v["estimate"] for k, v in out["pass_at_k"].items()} == {"1": 0.75, "2": 1.0}


def test_pass_at_k_is_the_unbiased_estimator_by_hand_and_by_enumerating_every_draw():
    from itertools import combinations

    from gsm_pipeline.grading.metrics import pass_at_k

    assert (pass_at_k(4, 1, 1), pass_at_k(4, 1, 2), pass_at_k(4, 2, 2)) == (0.25, 0.5, 1 - 1 / 6)
    assert (pass_at_k(4, 0, 4), pass_at_k(4, 4, 1), pass_at_k(3, 1, 3)) == (0.0, 1.0, 1.0)
    for n in range(1, 7):  # the share of all k-subsets of the n samples holding a correct one
        for c in range(n + 1):
            for k in range(1, n + 1):
                draws = list(combinations([True] * c + [False] * (n - c), k))
                assert math.isclose(pass_at_k(n, c, k), sum(any(d) for d in draws) / len(draws)), (n, c, k)
    assert 0 < pass_at_k(1024, 3, 512) < 1  # exact binomials: no overflow at GPU-preset sample counts
    with pytest.raises(ValueError, match="0 < k <= n"):
        pass_at_k(4, 1, 8)


def test_pass_at_k_over_questions_has_a_reproducible_bootstrap_interval_and_stops_at_the_fewest_samples():
    from gsm_pipeline.grading.metrics import pass_at_k_curve

    curve = pass_at_k_curve([(4, 0), (4, 1), (4, 4), (8, 2)], [1, 2, 4, 8])
    assert list(curve) == ["1", "2", "4"]  # one question has only 4 samples
    assert [round(curve[k]["estimate"], 4) for k in curve] == [round((0 + .25 + 1 + .25) / 4, 4),
                                                              round((0 + .5 + 1 + (1 - 15 / 28)) / 4, 4),
                                                              round((0 + 1 + 1 + (1 - 15 / 70)) / 4, 4)]
    for point in curve.values():
        assert point["ci95"][0] < point["estimate"] < point["ci95"][1] and point["questions"] == 4
    many = [(8, (7 * i) % 9) for i in range(60)]  # enough questions that an unseeded bootstrap would move
    assert pass_at_k_curve(many, [1, 2]) == pass_at_k_curve(many, [1, 2])
    # a 95% interval: about mean +- 1.96 standard errors over 60 questions (a 50% one is a third as wide)
    low, high = pass_at_k_curve(many, [1])["1"]["ci95"]
    values = [c / 8 for _, c in many]
    assert high - low == pytest.approx(2 * 1.96 * statistics.stdev(values) / len(values) ** 0.5, rel=0.15)
    assert pass_at_k_curve([(2, 2), (2, 2)], [1])["1"] == {"estimate": 1.0, "ci95": [1.0, 1.0], "questions": 2}


def test_sampled_evaluation_of_a_model_writes_every_sample_and_the_curves(tiny_model, tiny_data, tmp_path):
    done = subprocess.run(["gsm-pipeline", "evaluate", "--model", str(tiny_model), "--data",
                           str(tiny_data / "test.jsonl"), "--max-new-tokens", "8", "--samples", "4",
                           "--temperature", "1.0", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 4 and sorted({r["sample"] for r in rows}) == [0, 1, 2, 3]
    assert all(math.isfinite(r["score"]) and r["score"] <= 0 for r in rows)  # mean token log-probabilities
    sampling = json.loads((tmp_path / "metrics.json").read_text())["sampling"]
    assert sampling["pass@4"] >= sampling["pass@2"] >= sampling["pass@1"]
    assert {"maj@4", "best@4", "unique_answers"} <= set(sampling)


def test_an_external_reward_model_can_rank_samples(tiny_model, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from gsm_pipeline.generation.sampling import reward_model_scorer

    config = AutoConfig.from_pretrained(tiny_model, num_labels=1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "rm")
    scores = reward_model_scorer(str(tmp_path / "rm"))(["Q: 1+1?", "Q: 2+2?"], [" 2", " 5"])
    assert len(scores) == 2 and all(math.isfinite(x) for x in scores)


def test_a_reward_model_that_cannot_load_fails_before_the_first_batch(tiny_model, tiny_data, tmp_path, monkeypatch):
    from gsm_pipeline.errors import ModelError
    from gsm_pipeline.generation import decoding as generation
    from gsm_pipeline.jobs import evaluate

    def no_generation(*a, **k):
        raise AssertionError("generation started before the reward model was loaded")

    monkeypatch.setattr(generation, "decode", no_generation)
    args = ["--model", str(tiny_model), "--data", str(tiny_data / "test.jsonl"), "--samples", "2",
            "--out", str(tmp_path / "out")]
    (tmp_path / "rm").mkdir()
    (tmp_path / "rm" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    (tmp_path / "rm" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match=rf"{tmp_path / 'rm'}: cannot load as a reward model"):
        evaluate.main([*args, "--reward-model", str(tmp_path / "rm")])
    with pytest.raises(ModelError, match=rf"{tmp_path / 'missing'}: not a model folder"):
        evaluate.main([*args, "--reward-model", str(tmp_path / "missing")])
    assert not (tmp_path / "out").exists()


def test_generation_stops_a_row_once_its_own_completion_closes_the_answer_or_says_eos(tiny_model):
    from transformers import AutoTokenizer

    from gsm_pipeline.generation.decoding import ending

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ended = ending(tok, {tok.eos_token_id}, ["</SOLUTION>"])
    done = tok("<SOLUTION>7</SOLUTION>", add_special_tokens=False)["input_ids"]
    going = tok("<SOLUTION>7 and so", add_special_tokens=False)["input_ids"]
    assert ended(done) and not ended(going)
    assert ended(going + [tok.eos_token_id])
    assert not ending(tok, {tok.eos_token_id}, None)(done)  # no stop strings: only EOS ends a row


@pytest.mark.parametrize("engine, batches", [("loop", "decode"), ("continuous", "continuous")])
def test_a_killed_evaluation_resumes_from_its_journal_and_ends_identical(tiny_model, tiny_data, tmp_path, monkeypatch,
                                                                         engine, batches):
    from gsm_pipeline.generation import decoding as generation
    from gsm_pipeline.jobs import evaluate

    args = ["--model", str(tiny_model), "--data", str(tiny_data / "test.jsonl"), "--max-new-tokens", "8",
            "--batch-size", "2", "--samples", "2", "--temperature", "1.0", "--engine", engine]
    evaluate.main([*args, "--out", str(tmp_path / "clean")])

    real_decode, calls, killed = getattr(generation, batches), [], []

    def dies_on_the_fifth_batch(*a, **k):
        calls.append(1)
        if len(calls) == 5 and not killed:  # 4 greedy batches done, the first sampled batch dies
            killed.append(1)
            raise SystemError("killed")
        return real_decode(*a, **k)

    monkeypatch.setattr(generation, batches, dies_on_the_fifth_batch)
    with pytest.raises(SystemError, match="killed"):
        evaluate.main([*args, "--out", str(tmp_path / "killed")])
    assert not (tmp_path / "killed" / "predictions.jsonl").exists()
    assert len((tmp_path / "killed" / "predictions.partial.jsonl").read_text().splitlines()) == 8

    calls.clear()
    evaluate.main([*args, "--out", str(tmp_path / "killed")])
    assert len(calls) == 8  # only the 8 sampled batches (16 sequences / 2) ran again
    for name in ("predictions.jsonl", "samples.jsonl"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert not list((tmp_path / "killed").glob("*.partial.*"))
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["runtime"]["engine"] == engine


def test_a_partial_evaluation_of_a_model_retrained_since_starts_over(tiny_model, tiny_data, tmp_path, monkeypatch):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from gsm_pipeline.generation import decoding as generation
    from gsm_pipeline.jobs import evaluate

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    args = ["--model", str(model), "--data", str(tiny_data / "test.jsonl"), "--max-new-tokens", "8",
            "--batch-size", "2", "--out", str(tmp_path / "eval")]
    real_decode, calls, killed = generation.decode, [], []

    def dies_on_the_third_batch(*a, **k):
        calls.append(1)
        if len(calls) == 3 and not killed:
            killed.append(1)
            raise SystemError("killed")
        return real_decode(*a, **k)

    monkeypatch.setattr(generation, "decode", dies_on_the_third_batch)
    with pytest.raises(SystemError, match="killed"):
        evaluate.main(args)
    assert len((tmp_path / "eval" / "predictions.partial.jsonl").read_text().splitlines()) == 4

    retrained = AutoModelForCausalLM.from_pretrained(model)  # the stage trains again into the same folder
    with torch.no_grad():
        for weight in retrained.parameters():
            weight.add_(0.01)
    retrained.save_pretrained(model)
    calls.clear()
    evaluate.main(args)
    assert len(calls) == 4  # all 8 problems generated again by the new weights, none taken from the old journal
    assert not list((tmp_path / "eval").glob("*.partial.*"))


def test_a_crossing_is_where_stage_minus_base_changes_sign_between_two_ks():
    from gsm_pipeline.reporting.coverage import crossings, movement

    def curve(*values):
        return {str(2 ** i): {"estimate": v} for i, v in enumerate(values)}

    # RL ahead at k=1, level at k=2 (no sign), the base ahead at k=4: one crossing, interpolated on log2 k between
    # 1 and 4 at 2 * 0.2 / 0.3 = 4/3, i.e. k = 2^(4/3)
    [cross] = crossings(curve(0.5, 0.6, 0.7), curve(0.3, 0.6, 0.8))
    assert (cross["after_k"], cross["before_k"], cross["ahead_below"]) == (1, 4, "stage")
    assert math.isclose(cross["k"], 2 ** (4 / 3))
    assert crossings(curve(0.5, 0.7, 0.9), curve(0.3, 0.6, 0.8)) == []  # ahead everywhere
    assert [c["ahead_below"] for c in crossings(curve(0.1, 0.5, 0.6, 0.9), curve(0.2, 0.4, 0.7, 0.8))] == [
        "base", "stage", "base"]
    # (samples, correct) per problem: a never -> sometimes, b sometimes -> always, c only the stage sampled
    moved = movement({"a": (4, 0), "b": (4, 2)}, {"a": (4, 1), "b": (4, 4), "c": (4, 4)})
    assert {k: v for k, v in moved.items() if v} == {"never->sometimes": 1, "sometimes->always": 1}


def test_the_report_names_each_sample_count_when_rows_sample_differently():
    """A row's eval_samples may differ from the rest: the page says every count used and which row used which."""
    from gsm_pipeline.reporting.page import _sampling

    def sampled(n: int) -> dict:
        return {"samples": n, "temperature": 0.7, "scorer": "policy", "lost_by_vote": [], "lost_by_scorer": ["q"]}

    rows = [{"run": run, "prompt": "p", "testset": "t"} for run in ("base", "rl-a", "rl-b")]
    section = _sampling(rows, {("base", "p", "t"): sampled(64), ("rl-a", "p", "t"): sampled(8),
                               ("rl-b", "p", "t"): sampled(64)})
    assert section["samples"] == "8 or 64"
    assert [(r["run"], r["samples"]) for r in section["lost"]["rows"]] == [("base", 64), ("rl-a", 8), ("rl-b", 64)]
