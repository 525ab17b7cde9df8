"""Evaluation generation throughput: ours (length-sorted batches, stop at EOS or the closing tag)
against plain `model.generate` at batch 64 in input order, in one run, reported as a ratio.

    python tests/bench/bench_generation.py --questions GSM8K_TEST.jsonl --tokenizer resources/model   # GPU
    python tests/bench/bench_generation.py --smoke                                                    # CPU check

The model is randomly initialised with SmolLM2-135M's architecture (weights do not change the cost
of a fixed number of tokens); --ignore-eos makes both sides generate the full budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, max_position_embeddings=2048, tie_word_embeddings=True)


def plain_generate(model, tokenizer, prompts, max_new_tokens, batch_size=64):
    import torch

    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)


def main() -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gsm_pipeline.data import load_test_rows
    from gsm_pipeline.generation.decoding import generate
    from gsm_pipeline.prompts import render_prompt

    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", help="question/answer JSONL (GSM8K test: 1319 rows)")
    parser.add_argument("--tokenizer", help="a tokenizer folder (SmolLM2's, from resources/model)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64, help="our batch size")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script runs")
    parser.add_argument("--out", help="also write the result here as JSON")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        from tiny_model import build_tiny_model

        folder = build_tiny_model(Path("/tmp/bench_tiny_model"))
        tokenizer, arch, n, budget = AutoTokenizer.from_pretrained(folder), TINY, 16, 16
        prompts = [f"What is {i} + {i}?" for i in range(n)]
    else:
        tokenizer, arch, budget = AutoTokenizer.from_pretrained(args.tokenizer), SMOLLM2_135M, args.max_new_tokens
        prompts = [r["question"] for r in load_test_rows(args.questions)]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    spec = {"answer_format": "tagged", "chat_template": True}
    prompts = [render_prompt(q, spec, tokenizer) for q in prompts]
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **arch)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = None  # fixed workload: every sequence runs the full budget

    timings = {}
    for name, run in (("plain_generate_b64", lambda: plain_generate(model, tokenizer, prompts, budget)),
                      ("ours", lambda: generate(model, tokenizer, prompts, max_new_tokens=budget,
                                                batch_size=args.batch_size, progress=False))):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
        timings[name] = {"seconds": round(time.perf_counter() - start, 2), "peak_gpu_gib": peak}
    result = {"device": device, "problems": len(prompts), "max_new_tokens": budget, **timings,
              "speedup_vs_plain": round(timings["plain_generate_b64"]["seconds"] / timings["ours"]["seconds"], 2)}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
