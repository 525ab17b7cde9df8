"""Sampled evaluation: maj@n, best-of-n and pass@n from the first n samples of each question, pass@k by the
unbiased estimator over all of them, plus the scorers best-of-n ranks samples by (the policy's own mean token
log-probability, or an external reward model)."""
from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any, Callable

from ..errors import ModelError
from ..grading.answers import is_correct
from ..grading.metrics import pass_at_k_curve
from ..grading.numerals import exact

Scorer = Callable[[list[str], list[str]], list[float]]


def vote(answers: list[float | str | None]) -> Fraction | None:
    """Majority answer among parseable ones, counted by exact value (records hold 1/3 as '1/3' and 0.5 as 0.5); a
    tie goes to the answer that appeared first."""
    present = [value for value in map(exact, answers) if value is not None]
    if not present:
        return None
    counts = Counter(present)
    best = max(counts.values())
    return next(a for a in present if counts[a] == best)


def question_outcomes(samples: list[dict[str, Any]], gold: float | None, n: int) -> dict[str, bool]:
    """pass@n, maj@n and best-of-n for one question from its first n samples (strict extraction)."""
    first = samples[:n]
    best = max(first, key=lambda s: s["score"])
    return {"pass": any(s["correct_strict"] for s in first),
            "maj": is_correct(vote([s["extracted_strict"] for s in first]), gold),
            "best": bool(best["correct_strict"])}


def sample_metrics(groups: dict[str, list[dict[str, Any]]], golds: dict[str, float | None],
                   ns: tuple[int, ...] = (1, 2, 4, 8)) -> dict[str, Any]:
    """Accuracy curves over n, the unique-answer counts, and the questions the vote or scorer lost."""
    total = len(groups)
    out: dict[str, Any] = {}
    available = min((len(s) for s in groups.values()), default=0)
    for n in [n for n in ns if n <= available]:
        outcomes = {qid: question_outcomes(s, golds[qid], n) for qid, s in groups.items()}
        for kind in ("pass", "maj", "best"):
            out[f"{kind}@{n}"] = sum(o[kind] for o in outcomes.values()) / total if total else 0.0
        if n == available:
            out["lost_by_vote"] = sorted(q for q, o in outcomes.items() if o["pass"] and not o["maj"])
            out["lost_by_scorer"] = sorted(q for q, o in outcomes.items() if o["pass"] and not o["best"])
    out["unique_answers"] = {qid: len({exact(s["extracted_strict"]) for s in samples})
                             for qid, samples in groups.items()}
    # every sample counts (not only the first k): lower variance than pass@n above, the same expectation
    out["pass_at_k"] = pass_at_k_curve([(len(s), sum(bool(x["correct_strict"]) for x in s)) for s in groups.values()],
                                       [2 ** i for i in range(available.bit_length())])
    return out


# Bytes of one batch's logits when scoring: on a GPU, 16 or more of a 0.5B model's longest GSM8K rows (152k
# vocabulary, bf16) at once; on a CPU, where a test run shares 24 GB between workers, a quarter of that in fp32.
SCORER_BUDGET_BYTES = {"cuda": 2 ** 32, "cpu": 2 ** 30}


def policy_scorer(model, tokenizer, budget: int | None = None) -> Scorer:
    """Mean log-probability per completion token under the policy itself (temperature 1). Rows are scored as many at
    a time as keep the batch's logits within `budget` elements (default: SCORER_BUDGET_BYTES of the model's device
    and dtype), as divergence.batches batches the KL's rows: hundreds of short answers or a few long solutions at
    once. The fp32 log-softmax runs on one row's completion at a time, so a large vocabulary never holds full-batch
    fp32 copies."""
    import torch

    from .divergence import batches

    if budget is None:
        budget = SCORER_BUDGET_BYTES.get(model.device.type, SCORER_BUDGET_BYTES["cpu"]) // model.dtype.itemsize

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        n_prompt = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        encoded = tokenizer([a + b for a, b in zip(prompts, completions)], add_special_tokens=False)["input_ids"]
        lengths = [len(ids) for ids in encoded]
        vocab = model.get_output_embeddings().weight.shape[0]
        scores = []
        tokenizer.padding_side = "right"
        for group in batches(lengths, vocab, budget):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in group]}, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                logits = model(**batch).logits
                for row, i in enumerate(group):  # position t predicts token t + 1: the completion's from its first
                    first, end = max(n_prompt[i] - 1, 0), lengths[i] - 1
                    picked = torch.log_softmax(logits[row, first:end].float(), -1).gather(
                        -1, batch["input_ids"][row, first + 1:end + 1, None])
                    scores.append(picked.sum().item() / max(end - first, 1))
        tokenizer.padding_side = "left"
        return scores

    return score


def reward_model_scorer(path: str, batch_size: int = 16) -> Scorer:
    """An external reward model (AutoModelForSequenceClassification, one logit) scores prompt+completion."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: cannot load as a reward model ({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        out = []
        for start in range(0, len(prompts), batch_size):
            texts = [a + b for a, b in zip(prompts[start:start + batch_size], completions[start:start + batch_size])]
            batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                out += model(**batch).logits[:, 0].float().tolist()
        return out

    return score
