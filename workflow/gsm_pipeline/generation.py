"""Batched generation for evaluation: length-sorted, left-padded, stops at EOS or the
closing answer tag, greedy unless asked to sample. Returns results in input order."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from transformers import StoppingCriteria


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
             stop_strings: list[str] | None = None, do_sample: bool = False, temperature: float = 1.0,
             progress: bool = True, seed: int = 0, done: dict[int, dict] | None = None,
             on_batch: Callable[[list[int], list[dict]], None] | None = None) -> list[dict[str, Any]]:
    """Batches are fixed slices of one length-sorted order, and sampling is reseeded per batch, so a
    rerun that skips the batches already in `done` produces exactly what one uninterrupted call would."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    # Longest first: similar lengths share a batch (less padding) and memory peaks early.
    order = sorted(range(len(prompts)), key=lambda i: -len(tokenizer(prompts[i])["input_ids"]))
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    eos_ids = set(_as_list(model.generation_config.eos_token_id) + _as_list(tokenizer.eos_token_id))
    start = time.time()
    model.eval()
    done = done or {}
    for i, result in done.items():
        results[i] = result
    for first in range(0, len(order), batch_size):
        idx = order[first:first + batch_size]
        if all(i in done for i in idx):
            continue
        if do_sample:
            torch.manual_seed(seed + first)
        batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        kwargs = {"temperature": temperature, "top_p": 1.0, "top_k": 0} if do_sample else {}
        criteria = [StopOnText(tokenizer, stop_strings, batch["input_ids"].shape[1])] if stop_strings else []
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                 stopping_criteria=criteria, pad_token_id=tokenizer.pad_token_id, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        for i, tokens in zip(idx, new):
            results[i] = _finish(tokens, tokenizer, eos_ids, stop_strings or [], max_new_tokens)
        if on_batch:
            on_batch(idx, [results[i] for i in idx])
        if progress:
            count = min(first + batch_size, len(order))
            print(f"generated {count}/{len(order)} ({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    return results  # type: ignore[return-value]


class StopOnText(StoppingCriteria):
    """Stops each row once its generated tail contains a stop string.

    transformers' own `stop_strings` rebuilds vocabulary-wide tables on every generate
    call (seconds per batch here); decoding the last few generated tokens is enough.
    """

    def __init__(self, tokenizer, stops: list[str], prompt_length: int, window: int = 16):
        self.tokenizer, self.stops, self.start, self.window = tokenizer, stops, prompt_length, window

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        tail = input_ids[:, max(self.start, input_ids.shape[1] - self.window):]
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _finish(tokens: list[int], tokenizer, eos_ids: set[int], stops: list[str], budget: int) -> dict[str, Any]:
    """Cut at the first EOS; the rest of the row is padding."""
    ended = False
    for n, token in enumerate(tokens):
        if token in eos_ids:
            tokens, ended = tokens[:n], True
            break
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    for stop in stops:
        if stop in text:
            text, ended = text[: text.index(stop) + len(stop)], True
    return {"completion": text, "completion_tokens": len(tokens), "truncated": not ended and len(tokens) >= budget}
