"""Batched generation is exact: the batch a problem lands in changes nothing, every prediction carries its own
question's id in input order, sampling samples, and best-of-n scores are what the scorer says."""
import json
import warnings

import pytest

from gsm_pipeline.data import load_test_rows
from gsm_pipeline.generation.decoding import generate
from gsm_pipeline.jobs.evaluate import evaluate_rows
from gsm_pipeline.model_io import load_model_and_tokenizer
from gsm_pipeline.prompts import render_prompt
from gsm_pipeline.settings.evaluation import EvalJob

SPEC = {"answer_format": "tagged", "chat_template": True, "confidence": False}
JOB = EvalJob(prompt=SPEC, max_new_tokens=12)


@pytest.fixture(scope="module")
def loaded(tiny_prep):
    # the format-trained tiny model: its completions differ by question (the random one repeats one token)
    return load_model_and_tokenizer(tiny_prep / "model", padding_side="left")


@pytest.fixture(scope="module")
def rows(tiny_data):
    # questions of different lengths, so batches are padded and the length sort reorders them
    test = load_test_rows(tiny_data / "test.jsonl")
    return [{**r, "question": r["question"] + " Think." * i} for i, r in enumerate(test)]


def test_greedy_completions_do_not_depend_on_batch_size_padding_or_order(loaded, rows):
    model, tokenizer = loaded
    prompts = [render_prompt(r["question"], SPEC, tokenizer) for r in rows]
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    assert lengths != sorted(lengths, reverse=True)  # the sort really reorders
    alone = [generate(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0]["completion"] for p in prompts]
    assert len(set(alone)) > 1  # distinct completions, so a row given another row's output would show
    for batch_size in (1, 3, 8):
        graded = evaluate_rows(model, tokenizer, rows, JOB.model_copy(update={"batch_size": batch_size}), prompts)
        assert [g["id"] for g in graded] == [r["id"] for r in rows]
        assert [g["completion"] for g in graded] == alone, f"batch size {batch_size}"


def test_sampling_at_temperature_one_gives_distinct_samples(loaded, rows):
    model, tokenizer = loaded
    prompts = [render_prompt(r["question"], SPEC, tokenizer) for r in rows[:4] for _ in range(4)]
    out = generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=8, do_sample=True, temperature=1.0)
    per_question = [{o["completion"] for o in out[i:i + 4]} for i in range(0, 16, 4)]
    assert max(len(s) for s in per_question) > 1


def test_both_engines_give_the_same_greedy_completions_cut_where_the_loop_stops(loaded, rows):
    """Continuous batching stops at EOS only: its rows are cut after the fact where the loop stops (at a stop
    string), so the completions, their token counts and the truncated flags are the loop's (fp32, CPU). The stop
    here is mid-completion (the model goes on to write its answer), so a row that is not cut shows."""
    model, tokenizer = loaded
    prompts = [render_prompt(r["question"], SPEC, tokenizer) for r in rows]
    settings = dict(max_new_tokens=40, batch_size=3, stop_strings=["<end_working_out>"], progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = generate(model, tokenizer, prompts, engine="loop", **settings)
        continuous = generate(model, tokenizer, prompts, engine="continuous", **settings)
    # neither engine leans on an API transformers has deprecated (the loop's `past_key_values` goes in 5.40)
    assert not [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    for i, (a, b) in enumerate(zip(continuous, loop, strict=True)):
        assert a == b, f"row {i}: continuous {a} != loop {b}"
    assert any(r["completion"].endswith("<end_working_out>") for r in loop)
    assert any(not r["completion"].endswith("<end_working_out>") for r in loop)  # both kinds of row occur
    sampled = generate(model, tokenizer, prompts[:2] * 4, engine="continuous", do_sample=True, temperature=1.0,
                       **settings)
    assert len({r["completion"] for r in sampled}) > 2  # and it samples


def mean_completion_logprob(model, tokenizer, prompt: str, completion: str) -> float:
    """Independently of the scorer: one unpadded sequence, the completion tokens' mean log-probability."""
    import torch

    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prompt + completion, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    picked = [logprobs[pos - 1, ids[0, pos]].item() for pos in range(n_prompt, ids.shape[1])]
    return sum(picked) / len(picked)


def test_the_policy_score_is_the_mean_token_log_probability_of_the_completion(loaded, rows, monkeypatch):
    from gsm_pipeline.generation import sampling
    from gsm_pipeline.generation.sampling import policy_scorer

    model, tokenizer = loaded
    prompts = [render_prompt(r["question"], SPEC, tokenizer) for r in rows[:3]]
    completions = [" <SOLUTION>4</SOLUTION>", " so the answer is 12 apples", " 7"]
    expected = [mean_completion_logprob(model, tokenizer, p, c) for p, c in zip(prompts, completions)]
    vocab = model.get_output_embeddings().weight.shape[0]
    forwards = []
    hook = model.register_forward_hook(lambda module, args, kwargs, out: forwards.append(len(kwargs["input_ids"])),
                                       with_kwargs=True)
    try:
        together = policy_scorer(model, tokenizer)(prompts, completions)  # one batch, padded together
        alone = policy_scorer(model, tokenizer, budget=vocab)(prompts, completions)  # a row's logits exceed it
        # the default budget is bytes on the model's device, in its dtype: here two rows' fp32 logits
        texts = [p + c for p, c in zip(prompts, completions)]
        longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        monkeypatch.setitem(sampling.SCORER_BUDGET_BYTES, "cpu", 2 * longest * vocab * 4)
        paired = policy_scorer(model, tokenizer)(prompts, completions)
    finally:
        hook.remove()
    assert forwards == [3, 1, 1, 1, 2, 1]
    assert together == pytest.approx(expected, abs=1e-4) and alone == pytest.approx(expected, abs=1e-4)
    assert paired == pytest.approx(expected, abs=1e-4)


def test_best_of_n_ranks_samples_by_the_reward_models_own_scores(tiny_model, tiny_data, tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from gsm_pipeline.jobs import evaluate

    config = AutoConfig.from_pretrained(tiny_model, num_labels=1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "rm")
    evaluate.main(["--model", str(tiny_model), "--data", str(tiny_data / "test.jsonl"), "--max-new-tokens", "8",
                   "--samples", "2", "--temperature", "1.0", "--reward-model", str(tmp_path / "rm"),
                   "--mixed-precision", "no",  # fp32, as the independent check below computes
                   "--out", str(tmp_path / "out")])
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm", num_labels=1).eval()
    rm_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "rm")
    rm.config.pad_token_id = rm_tokenizer.pad_token_id or rm_tokenizer.eos_token_id
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    questions = {r["id"]: r["question"] for r in load_test_rows(tiny_data / "test.jsonl")}
    asked = json.loads((tmp_path / "out" / "metrics.json").read_text())["prompt"]  # as the run asked (config.yaml's)
    for sample in samples[:4]:
        text = render_prompt(questions[sample["id"]], asked, tokenizer) + sample["completion"]
        with torch.inference_mode():
            expected = rm(**rm_tokenizer(text, return_tensors="pt")).logits[0, 0].item()
        assert sample["score"] == pytest.approx(expected, abs=1e-4)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["sampling"]
    by_question = {}
    for s in samples:
        by_question.setdefault(s["id"], []).append(s)
    best = [max(group, key=lambda s: s["score"])["correct_strict"] for group in by_question.values()]
    assert metrics["best@2"] == sum(best) / len(best)
    assert metrics["scorer"] == str(tmp_path / "rm")


def reference_kl(model, base, prompt_ids, completion_ids):
    """KL(model || base) summed over the completion's positions, one row alone, by torch's kl_div."""
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        mine = F.log_softmax(model(ids).logits[0, len(prompt_ids) - 1:-1], -1)
        theirs = F.log_softmax(base(ids).logits[0, len(prompt_ids) - 1:-1], -1)
    return F.kl_div(theirs, mine, log_target=True, reduction="sum").item(), len(completion_ids)


def test_kl_to_the_base_is_the_exact_next_token_kl_on_the_generated_tokens(loaded, rows, tiny_model):
    """KL(prep SFT || base) at every position of the tokens the model generated (its EOS included), summed per
    completion: recomputed one row at a time with torch's kl_div; padding in a batch changes nothing, and a model
    is at KL 0 from itself."""
    from gsm_pipeline.generation.divergence import completion_kl

    model, tokenizer = loaded
    base, _ = load_model_and_tokenizer(tiny_model)
    prompts = [render_prompt(r["question"], SPEC, tokenizer) for r in rows[:5]]
    generated = [g["token_ids"] for g in generate(model, tokenizer, prompts, max_new_tokens=40, batch_size=5,
                                                  token_ids=True)]
    assert any(ids[-1] == tokenizer.eos_token_id for ids in generated)  # an emitted EOS is among the scored tokens
    expected = [reference_kl(model, base, tokenizer(p, add_special_tokens=False)["input_ids"], c)
                for p, c in zip(prompts, generated)]
    assert all(n > 0 for _, n in expected) and sum(k for k, _ in expected) > 0.01  # it moved: not vacuous
    for batch_size in (1, 4, None):  # None: as many rows as fit the default budget
        got = completion_kl(model, base, tokenizer, prompts, generated, batch_size=batch_size)
        assert [n for _, n in got] == [n for _, n in expected]
        assert [k for k, _ in got] == pytest.approx([k for k, _ in expected], rel=1e-4, abs=1e-6)
    assert [k for k, _ in completion_kl(model, model, tokenizer, prompts, generated)] == pytest.approx([0] * 5,
                                                                                                     abs=1e-6)


def test_kl_batches_hold_as_many_rows_as_keep_a_full_vocabulary_tensor_within_the_budget():
    from gsm_pipeline.generation.divergence import batches

    # rows x longest x vocab <= 100: [10, 10] (2 x 10 x 5), then 30 alone (1 x 30 x 5 > 100 is still one row)
    assert batches([10, 10, 30, 4, 4], vocab=5, budget=100) == [range(0, 2), range(2, 3), range(3, 5)]
    assert batches([], vocab=5, budget=100) == []


def test_kl_scores_the_ids_generated_not_a_retokenization_of_their_text(loaded, rows, tiny_model):
    """A model can write a text as tokens the tokenizer would merge (here a number spelt digit by digit): the KL
    is of those tokens, which re-encoding the decoded text would not give back."""
    from gsm_pipeline.generation.divergence import completion_kl

    model, tokenizer = loaded
    base, _ = load_model_and_tokenizer(tiny_model)
    prompt = render_prompt(rows[0]["question"], SPEC, tokenizer)
    digits = [tokenizer.convert_tokens_to_ids(d) for d in "1234"]
    assert tokenizer(tokenizer.decode(digits), add_special_tokens=False)["input_ids"] != digits  # merges apart
    spelt = digits + [tokenizer.eos_token_id]
    [got] = completion_kl(model, base, tokenizer, [prompt], [spelt])
    assert got == pytest.approx(reference_kl(model, base, tokenizer(prompt, add_special_tokens=False)["input_ids"],
                                             spelt), rel=1e-4)


def test_per_token_kl_weighs_every_token_alike_and_per_completion_every_completion():
    from gsm_pipeline.generation.divergence import kl_summary

    out = kl_summary([(3.0, 1), (1.0, 9)], "base", "greedy completions")
    assert out["per_token"] == pytest.approx(4.0 / 10)  # not the mean of per-completion means (3 + 1/9) / 2
    assert out["per_completion"] == pytest.approx(2.0)
    assert (out["completions"], out["tokens"]) == (2, 10)
    assert kl_summary([], "base", "none")["per_token"] == 0.0


def test_the_base_evaluation_samples_once_and_a_trained_models_scores_kl_from_the_base_on_those_samples(
        tiny_prep, tiny_data, tiny_model, tmp_path, monkeypatch):
    """With kl_to_base the base model's evaluation writes one sample per problem at temperature 1 (token ids); a
    trained model's evaluation reads them and reports KL(base || model) on them, the forward KL that predicts
    forgetting: recomputed here with torch's kl_div, the base's distribution first."""
    from gsm_pipeline.jobs import evaluate

    monkeypatch.chdir(tmp_path)  # no project config.yaml: the settings' own defaults, the prompt below
    samples = tmp_path / "base/reference_samples.jsonl"
    common = ["--data", str(tiny_data / "test.jsonl"), "--max-new-tokens", "12", "--mixed-precision", "no",
              "--reference-samples", str(samples)]
    evaluate.main(["--model", str(tiny_model), *common, "--out", str(tmp_path / "base")])
    drawn = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(drawn) == 8 and all(d["token_ids"] for d in drawn)
    evaluate.main(["--model", str(tiny_prep / "model"), "--reference", str(tiny_model), *common,
                   "--out", str(tmp_path / "prep")])
    metrics = json.loads((tmp_path / "prep/metrics.json").read_text())
    model, tokenizer = load_model_and_tokenizer(tiny_prep / "model")
    base, _ = load_model_and_tokenizer(tiny_model)
    rows = [json.loads(line) for line in (tmp_path / "prep/predictions.jsonl").read_text().splitlines()]
    by_id = {d["id"]: d["token_ids"] for d in drawn}
    spec = evaluate.project_defaults(read=False)["_prompt"]
    expected = [reference_kl(base, model, tokenizer(render_prompt(r["question"], spec, tokenizer),
                                                    add_special_tokens=False)["input_ids"], by_id[r["id"]])
                for r in rows]
    forward = metrics["kl_from_base"]
    assert forward["completions"] == 8 and forward["tokens"] == sum(n for _, n in expected)
    assert forward["per_completion"] == pytest.approx(sum(k for k, _ in expected) / 8, rel=1e-4)
    assert forward["per_completion"] > 0.01 and metrics["kl_to_base"]["per_completion"] > 0.01
    assert forward["per_completion"] != pytest.approx(metrics["kl_to_base"]["per_completion"], rel=1e-3)
