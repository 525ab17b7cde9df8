"""Batched generation for evaluation: length-sorted, left-padded, stops at EOS or the
closing answer tag, greedy unless asked to sample. Returns results in input order.

Two engines generate each batch, chosen by `generation.engine` (resolve_engine): our loop (below), or
transformers' continuous batching (`generate_batch`, a paged KV cache that refills finished slots). Continuous
batching stops at EOS only, so its rows are cut afterwards at the first token after which a stop string is
written: the same point the loop stops at, so completions, token counts and the truncated flag are the same.

Decoding is our own short loop over the KV cache rather than `model.generate`: a row that has ended leaves
the batch and the cache at once, so one long completion costs one row per token, not the whole batch
(`generate` steps every row until the last one ends). It is plain greedy argmax or plain temperature
sampling (top-p 1, top-k off); a model's own generation_config (repetition penalty and the like) is not
applied, so every stage of a run is decoded the same way.
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable

from ..settings.generation import resolve_engine


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
             stop_strings: list[str] | None = None, do_sample: bool = False, temperature: float = 1.0,
             progress: bool = True, seed: int = 0, done: dict[int, dict] | None = None,
             on_batch: Callable[[list[int], list[dict]], None] | None = None,
             engine: str = "loop", token_ids: bool = False) -> list[dict[str, Any]]:
    """Batches are fixed slices of one length-sorted order, and sampling is reseeded per batch, so a
    rerun that skips the batches already in `done` produces exactly what one uninterrupted call would.
    `token_ids`: each result also holds the ids generated (through the EOS), for scoring exactly those tokens."""
    import torch

    engine, _ = resolve_engine(engine, model.device)

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    # Longest first: similar lengths share a batch (less padding) and memory peaks early.
    order = sorted(range(len(prompts)), key=lambda i: -len(tokenizer(prompts[i])["input_ids"]))
    results: list[dict[str, Any] | None] = [None] * len(prompts)
    eos_ids = set(_as_list(model.generation_config.eos_token_id) + _as_list(tokenizer.eos_token_id))
    model.eval()
    done = done or {}
    for i, result in done.items():
        results[i] = result
    ended = ending(tokenizer, eos_ids, stop_strings)
    from tqdm.auto import tqdm

    # completions finished, as the Trainer shows its steps (a long batch is no longer minutes of silence)
    bar = tqdm(total=len(prompts), initial=len(done), unit="completion", desc="generating", disable=not progress,
               mininterval=2.0, file=sys.stderr)

    def may_stop(tokens: list[int]) -> bool:  # only a row that wrote a stop string can need a cut
        return any(stop in tokenizer.decode(tokens, skip_special_tokens=True) for stop in stop_strings or [])

    for first in range(0, len(order), batch_size):
        idx = order[first:first + batch_size]
        if all(i in done for i in idx):
            continue
        if do_sample:
            torch.manual_seed(seed + first)
        if engine == "continuous":
            new = [cut(tokens, ended) if may_stop(tokens) else tokens for tokens in continuous(
                model, tokenizer, [prompts[i] for i in idx], max_new_tokens=max_new_tokens, eos_ids=eos_ids,
                do_sample=do_sample, temperature=temperature)]
            bar.update(len(idx))
        else:
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            with torch.inference_mode():
                new = decode(model, batch, max_new_tokens=max_new_tokens, ended=ended, do_sample=do_sample,
                             temperature=temperature, tick=bar.update)
        for i, tokens in zip(idx, new):
            results[i] = _finish(tokens, tokenizer, eos_ids, stop_strings or [], max_new_tokens, token_ids)
        if on_batch:
            on_batch(idx, [results[i] for i in idx])
    bar.close()
    return results  # type: ignore[return-value]


def decode(model, batch: dict, *, max_new_tokens: int, ended: Callable[[list[int]], bool], do_sample: bool = False,
           temperature: float = 1.0, tick: Callable[[int], Any] = lambda n: None) -> list[list[int]]:
    """New tokens per row of a left-padded batch; a row stops at the first token after which `ended` holds
    (that token included) or at the budget, and from then on is dropped from the batch and its cache."""
    import torch
    from transformers import DynamicCache

    mask = batch["attention_mask"]
    positions = mask.long().cumsum(-1) - 1
    positions.masked_fill_(mask == 0, 1)  # as transformers does for left padding; masked anyway
    cache = DynamicCache(config=model.config)
    # transformers renamed forward's `past_key_values` to `cache` (the old name goes in 5.40); pyproject allows 5.0
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    live = list(range(mask.shape[0]))  # batch position -> row
    tokens: list[list[int]] = [[] for _ in live]
    step = batch["input_ids"]
    for _ in range(max_new_tokens):
        logits = model(input_ids=step, attention_mask=mask, position_ids=positions, **{cache_arg: cache},
                       use_cache=True, logits_to_keep=1).logits[:, -1].float()
        if do_sample:
            chosen = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1)[:, 0]
        else:
            chosen = logits.argmax(-1)
        keep = []
        for b, token in enumerate(chosen.tolist()):
            tokens[live[b]].append(token)
            if not ended(tokens[live[b]]):
                keep.append(b)
        tick(len(live) - len(keep))  # rows that ended at this token
        if not keep:
            break
        if len(keep) < len(live):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            chosen, mask, positions = chosen[index], mask[index], positions[index]
            live = [live[b] for b in keep]
        mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
        positions = positions[:, -1:] + 1
        step = chosen[:, None]
    else:
        tick(len(live))  # rows that ran to the budget
    return tokens


def continuous(model, tokenizer, prompts: list[str], *, max_new_tokens: int, eos_ids: set[int], do_sample: bool,
               temperature: float) -> list[list[int]]:
    """New tokens per prompt from transformers' continuous batching, decoded as the loop decodes: plain greedy
    or plain temperature sampling (no top-k, no top-p, none of the model's own generation_config)."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=do_sample, top_k=0, top_p=1.0,
                              temperature=temperature if do_sample else 1.0, eos_token_id=sorted(eos_ids) or None,
                              pad_token_id=tokenizer.pad_token_id)
    inputs = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    with torch.inference_mode():
        out = list(model.generate_batch(inputs=inputs, generation_config=config, progress_bar=False,
                                        continuous_batching_config=paged_cache(inputs, max_new_tokens)).values())
    failed = [o.request_id for o in out if o.error is not None]
    if len(out) != len(inputs) or failed:  # generate_batch logs a failed or missing request and goes on
        raise RuntimeError(f"continuous batching returned {len(out)} of {len(inputs)} completions "
                           f"(failed: {', '.join(failed) or 'none'})")
    return [list(o.generated_tokens) for o in out]


def paged_cache(inputs: list[list[int]], max_new_tokens: int, page: int = 256):
    """A paged cache that holds exactly this call's requests at full length. Left to itself the library sizes it to
    90% of free memory, which on a CPU is the machine's RAM: 15 GB resident and 7 s a call for the 2-layer test
    model, 8 GB for SmolLM2-135M (2.2 GB sized). Prefill is chunked at 2,048 tokens a step, which cost nothing
    measurable on the CPU against 6,000 (tests/bench/README.md)."""
    from transformers import ContinuousBatchingConfig

    blocks = sum(-(-(len(ids) + max_new_tokens) // page) for ids in inputs)
    return ContinuousBatchingConfig(page_size=page, num_blocks=blocks,
                                    max_batch_tokens=max(1, min(2048, sum(map(len, inputs)))))


def cut(tokens: list[int], ended: Callable[[list[int]], bool]) -> list[int]:
    """The tokens up to the first one after which the loop would have stopped (EOS or a stop string)."""
    for n in range(1, len(tokens) + 1):
        if ended(tokens[:n]):
            return tokens[:n]
    return tokens


def ending(tokenizer, eos_ids: set[int], stops: list[str] | None, window: int = 16) -> Callable[[list[int]], bool]:
    """A row has ended at an EOS token or once its last few tokens contain a stop string (decoding a short
    tail each step is enough; transformers' `stop_strings` rebuilds vocabulary-wide tables per call)."""
    def ended(tokens: list[int]) -> bool:
        if tokens[-1] in eos_ids:
            return True
        if not stops:
            return False
        tail = tokenizer.decode(tokens[-window:], skip_special_tokens=True)
        return any(stop in tail for stop in stops)
    return ended


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _finish(tokens: list[int], tokenizer, eos_ids: set[int], stops: list[str], budget: int,
            token_ids: bool = False) -> dict[str, Any]:
    """Cut at the first EOS; the rest of the row is padding."""
    ended, generated = False, list(tokens)
    for n, token in enumerate(tokens):
        if token in eos_ids:
            tokens, generated, ended = tokens[:n], generated[:n + 1], True
            break
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    for stop in stops:
        if stop in text:
            text, ended = text[: text.index(stop) + len(stop)], True
    out = {"completion": text, "completion_tokens": len(tokens), "truncated": not ended and len(tokens) >= budget}
    return {**out, "token_ids": generated} if token_ids else out
