"""Generation engines side by side in one run (issue 29): our loop (`engine: loop`), transformers' continuous
batching (`engine: continuous`, `generate_batch` with a paged KV cache) and plain `model.generate` at batch 64
in input order, greedy and with n samples per problem at temperature 1, every row the full budget. Prints
tokens/s per engine and each one's ratio to the loop, with the device (and the CPU's kind) named.

    python tests/bench/bench_generation.py --questions GSM8K_TEST.jsonl --tokenizer resources/model   # GPU
    python tests/bench/bench_generation.py --questions GSM8K_TEST.jsonl --tokenizer resources/model \\
        --problems 32 --max-new-tokens 256 --samples 4                                                   # CPU
    python tests/bench/bench_generation.py --smoke                                                    # CPU check

The model is randomly initialised with SmolLM2-135M's architecture (weights do not change the cost of a fixed
number of tokens), EOS disabled so every completion runs the full budget (the pipeline's engines still stop at
the tokenizer's EOS, which tokens/s counts where a completion reaches it); fp32 on a CPU, bf16 on a GPU.
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
ENGINES = ("loop", "continuous", "generate")
# not run by default: `model.generate` with a static KV cache and torch.compile'd decode steps (on any device),
# the candidate for the CPU's per-step overhead; timed after one untimed call that compiles
CANDIDATES = (*ENGINES, "compiled")


def plain_generate(model, tokenizer, prompts, max_new_tokens, do_sample, batch_size=64, compiled=False):
    import torch

    kwargs = {}
    if compiled:
        from transformers.generation.configuration_utils import CompileConfig

        compile_config = CompileConfig(mode="default", dynamic=False)
        compile_config._compile_all_devices = True  # transformers compiles generate's decode on GPUs only otherwise
        kwargs = {"cache_implementation": "static", "compile_config": compile_config}
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=do_sample, top_k=0, top_p=1.0,
                           pad_token_id=tokenizer.pad_token_id, **kwargs)


def device_name(device: str) -> str:
    import torch

    from gsm_pipeline import runtime

    if device == "cuda":
        return torch.cuda.get_device_name()
    native, why = runtime.cpu_bf16()
    return f"{runtime.describe('float32', runtime.resolve_precision('no', gpu=False))['cpu']}, " \
           f"{torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}, " \
           f"native bf16 {'yes' if native else 'no'} ({why})"


def main() -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gsm_pipeline.data import load_test_rows
    from gsm_pipeline.generation.decoding import generate
    from gsm_pipeline.prompts import render_prompt

    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", help="question/answer JSONL (GSM8K test: 1319 rows)")
    parser.add_argument("--tokenizer", help="a tokenizer folder (SmolLM2's, from resources/model)")
    parser.add_argument("--problems", type=int, help="the first N questions (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8, help="sampled completions per problem (0: greedy only)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64],
                        help="the engines' batch (evaluation.batch_size); several: each engine at each")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=CANDIDATES)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU: checks the script runs")
    parser.add_argument("--grpo-steps", type=int, default=0,
                        help="also time N GRPO updates (after a warm-up one) with each rollout engine: one group of 8 "
                             "completions of 160 tokens per update, the RL stage's defaults")
    parser.add_argument("--generation-batches", type=int, nargs="*", default=[],
                        help="with --grpo-steps, also roll out N completions at a time (TRL's generation_batch_size; "
                             "the default is one group of 8, each update on fresh completions)")
    parser.add_argument("--out", help="also write the result here as JSON")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        from tiny_model import build_tiny_model

        folder = build_tiny_model(Path("/tmp/bench_tiny_model"))
        tokenizer, arch, budget, samples = AutoTokenizer.from_pretrained(folder), TINY, 16, 2
        questions = [f"What is {i} + {i}?" for i in range(16)]
    else:
        tokenizer, arch, budget = AutoTokenizer.from_pretrained(args.tokenizer), SMOLLM2_135M, args.max_new_tokens
        questions = [r["question"] for r in load_test_rows(args.questions)][: args.problems]
        samples = args.samples
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [render_prompt(q, {"answer_format": "tagged", "chat_template": True}, tokenizer) for q in questions]
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **arch)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = None  # fixed workload: every sequence runs the full budget

    def run(engine: str, batch: list[str], do_sample: bool, size: int) -> int:
        """The tokens generated: the pipeline's engines also stop at the tokenizer's EOS, which a random model's
        completion can reach, so theirs are counted; `model.generate` runs every row to the budget."""
        if engine in ("generate", "compiled"):
            plain_generate(model, tokenizer, batch, budget, do_sample, size, compiled=engine == "compiled")
            return len(batch) * budget
        done = generate(model, tokenizer, batch, max_new_tokens=budget, batch_size=size, progress=False,
                        do_sample=do_sample, engine=engine, token_ids=True)
        return sum(len(row["token_ids"]) for row in done)

    def result(rows: dict) -> dict:
        for row in rows.values():  # each engine against the loop on the same work at the same batch
            loop = [r for r in rows.values() if r["engine"] == "loop"
                    and (r["decoding"], r["batch_size"]) == (row["decoding"], row["batch_size"])]
            row["speed_vs_loop"] = round(loop[0]["seconds"] / row["seconds"], 2) if loop else None
        return {"device": device, "device_name": device_name(device), "torch": torch.__version__,
                "problems": len(prompts), "max_new_tokens": budget, "dtype": str(dtype), "runs": rows}

    rows = {}
    for decoding, batch in (("greedy", prompts), (f"{samples} samples", [p for p in prompts for _ in range(samples)])):
        if decoding != "greedy" and not samples:
            continue
        for size, engine in ((size, engine) for size in args.batch_size for engine in args.engines):
            key = f"{decoding} {engine}" + (f" b{size}" if len(args.batch_size) > 1 else "")
            if engine == "compiled":  # compile first (the same shapes), untimed
                run(engine, batch[:size], decoding != "greedy", size)
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            tokens = run(engine, batch, decoding != "greedy", size)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            rows[key] = {
                "decoding": decoding, "engine": engine, "batch_size": size,
                "completions": len(batch), "tokens": tokens, "seconds": round(seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1),
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}
            print(f"{decoding:>10} {engine:>10} b{size}: {rows[key]}", file=sys.stderr, flush=True)
            if args.out:  # after every run: a benchmark stopped at the GPU proof's allowance keeps what it measured
                Path(args.out).write_text(json.dumps(result(rows), indent=2))
    if args.grpo_steps:
        rollouts(args, arch, tokenizer, rows)
        if args.out:
            Path(args.out).write_text(json.dumps(result(rows), indent=2))
    print(json.dumps(result(rows), indent=2))


def rollouts(args, arch: dict, tokenizer, rows: dict) -> None:
    """GRPO updates with each rollout engine (TRL's model.generate for `loop`, its continuous batching for
    `continuous`), through the pipeline's own RL job, on the same random model and GSM8K prompts."""
    import tempfile

    from bench_training import run_grpo
    from transformers import LlamaConfig, LlamaForCausalLM

    from gsm_pipeline.data import load_test_rows
    from gsm_pipeline.rows import write_jsonl

    work = Path(tempfile.mkdtemp(prefix="bench_rollouts_"))
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **arch)
    LlamaForCausalLM(config).save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    source = load_test_rows(args.questions) if args.questions else \
        [{"id": str(i), "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(16)]
    write_jsonl(work / "rows.jsonl", source[:64])
    budget = 8 if args.smoke else 160
    variants = {engine: {"engine": engine} for engine in ("loop", "continuous") if engine in args.engines}
    variants.update({f"loop, generation batch {n}": {"engine": "loop", "generation_batch_size": n}
                     for n in args.generation_batches})
    for name, variant in variants.items():
        out = run_grpo(work / "model", work / "rows.jsonl", variant, args.grpo_steps, budget, work / name)
        rows[f"grpo rollouts {name}"] = {"decoding": "grpo rollouts", "engine": name, "batch_size": None,
                                         "completions": out["completions"], "seconds": round(out["seconds"], 2),
                                         "completions_per_s": round(out["completions_per_s"], 3)}
        print(f"grpo rollouts {name:>10}: {rows[f'grpo rollouts {name}']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
