"""How far a trained model has moved from the base, measured at evaluation whatever the RL stage's `beta` was:
the KL divergence KL(policy || base) over the whole vocabulary at every position of the policy's own completions,
scored on the very tokens the policy generated (its EOS included where it wrote one), after the prompt tokenized
as generation tokenized it. Summed over a completion it is the sequence KL along that completion; per token, the
mean over all of them."""
from __future__ import annotations

from typing import Any

KL_BUDGET = 2 ** 26  # elements of each full-vocabulary fp32 tensor of a batch (256 MiB)


def batches(lengths: list[int], vocab: int, budget: int) -> list[range]:
    """Consecutive rows scored together: as many as keep a full-vocabulary tensor of the batch (rows x longest x
    vocab) within `budget` elements, at least one."""
    out, start, longest = [], 0, 0
    for i, n in enumerate(lengths):
        if i > start and (i - start + 1) * max(longest, n) * vocab > budget:
            out.append(range(start, i))
            start, longest = i, 0
        longest = max(longest, n)
    return out + ([range(start, len(lengths))] if lengths else [])


def completion_kl(policy, reference, tokenizer, prompts: list[str], completions: list[list[int]],
                  batch_size: int | None = None, budget: int = KL_BUDGET) -> list[tuple[float, int]]:
    """Per completion (its generated token ids): (sum over its tokens of the exact next-token KL(policy ||
    reference), its token count). The arithmetic stays on the models' device; only per-row sums come back. Rows
    are scored `batch_size` at a time, or by default as many as keep each full-vocabulary fp32 tensor within
    `budget` elements (256 MiB): many short answers at once, a few long solutions."""
    import torch

    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    lengths = [len(p) + len(c) for p, c in zip(encoded, completions)]
    groups = ([range(i, min(i + batch_size, len(prompts))) for i in range(0, len(prompts), batch_size)]
              if batch_size else batches(lengths, policy.get_output_embeddings().weight.shape[0], budget))
    out = []
    for group in groups:
        pairs = [(encoded[i], list(completions[i])) for i in group]
        width = max(len(p) + len(c) for p, c in pairs)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(pairs), width), pad, dtype=torch.long)
        attention = torch.zeros_like(ids)
        scored = torch.zeros(len(pairs), width - 1, dtype=torch.bool)  # position t predicts token t + 1
        for row, (p, c) in enumerate(pairs):
            ids[row, :len(p) + len(c)] = torch.tensor(p + c)
            attention[row, :len(p) + len(c)] = 1
            scored[row, max(len(p) - 1, 0):len(p) + len(c) - 1] = True
        device = policy.device
        ids, attention, scored = ids.to(device), attention.to(device), scored.to(device)
        with torch.inference_mode():
            mine = torch.log_softmax(policy(input_ids=ids, attention_mask=attention).logits[:, :-1].float(), -1)
            base = torch.log_softmax(reference(input_ids=ids, attention_mask=attention).logits[:, :-1].float(), -1)
            kl = ((mine.exp() * (mine - base)).sum(-1) * scored).sum(-1).cpu()
        out += [(float(total), int(n)) for total, n in zip(kl, scored.sum(-1).cpu())]
    return out


def kl_summary(per_completion: list[tuple[float, int]], reference: str, on: str) -> dict[str, Any]:
    """Per token: the total KL over every scored token (long completions weigh more); per completion: the mean of
    the sums."""
    tokens = sum(n for _, n in per_completion)
    return {"per_token": sum(k for k, _ in per_completion) / tokens if tokens else 0.0,
            "per_completion": sum(k for k, _ in per_completion) / len(per_completion) if per_completion else 0.0,
            "completions": len(per_completion), "tokens": tokens, "reference": reference, "on": on}
