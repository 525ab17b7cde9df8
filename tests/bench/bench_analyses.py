"""What issue 31's analyses cost beside the greedy evaluation they extend, in one run on one machine: pass@k
(`evaluation.samples` sampled completions per problem), KL to the base at evaluation (the base loaded and both
models scoring every greedy completion) and the zero-variance split (one strict grading per completion per
reward call). Real model, the CPU default's evaluation settings (160 new tokens, batch 32, fp32 on a CPU);
prints seconds and ratios to the greedy evaluation, with the machine named.

    python tests/bench/bench_analyses.py --model resources/model --data results/data/test/symbolic_id.jsonl
    python tests/bench/bench_analyses.py --smoke        # the tiny test model, to check the script runs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    from bench_generation import device_name

    from gsm_pipeline.data import default_test_rows, load_test_rows
    from gsm_pipeline.generation.divergence import completion_kl
    from gsm_pipeline.grading.rewards import logging_group_split, make_reward_functions
    from gsm_pipeline.jobs.evaluate import evaluate_rows, prompts_for, sample_rows
    from gsm_pipeline.model_io import load_model_and_tokenizer
    from gsm_pipeline.runtime import autocast, load_for_generation, seed_everything
    from gsm_pipeline.settings.evaluation import EvalJob

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="model folder (the CPU default's: resources/model, SmolLM2-135M)")
    parser.add_argument("--data", help="test rows (JSONL); default: the generated gsm_symbolic test rows")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="the tiny test model, 4 problems, 2 samples, 8 tokens")
    args = parser.parse_args()
    if args.smoke:
        from tiny_model import build_tiny_model

        args.model = str(build_tiny_model(Path("/tmp/bench_analyses_tiny")))
        args.problems, args.samples = 4, 2
    rows = (load_test_rows(args.data) if args.data else default_test_rows())[: args.problems]
    job = EvalJob(prompt={"answer_format": "tagged", "chat_template": True, "confidence": False},
                  samples=args.samples, max_new_tokens=8 if args.smoke else 160, batch_size=32)
    seed_everything(job.seed)
    model, tokenizer, precision, runtime = load_for_generation(args.model, job, None)
    prompts = prompts_for(rows, job.prompt, tokenizer)
    with autocast(precision):
        evaluate_rows(model, tokenizer, rows[:1], job, prompts[:1])  # warm-up, untimed
        graded, greedy = timed(evaluate_rows, model, tokenizer, rows, job, prompts, token_ids=True)
        _, sampled = timed(sample_rows, model, tokenizer, rows, job, prompts)
        start = time.perf_counter()
        base, _ = load_model_and_tokenizer(args.model, job.dtype)  # the weights do not change the cost
        completion_kl(model, base, tokenizer, prompts, [g["token_ids"] for g in graded])
        kl = time.perf_counter() - start
    completions = [g["completion"] for g in graded for _ in range(8)][:64]
    rewards = logging_group_split(make_reward_functions(["format", "correctness"], "tagged"), "tagged", 8)
    answers = [str(rows[0]["answer"])] * len(completions)
    kwargs = {"completions": completions, "answer": answers, "prompts": ["p"] * len(completions)}
    _, plain = timed(lambda: [f(**kwargs) for f in make_reward_functions(["format", "correctness"], "tagged")])
    _, split = timed(lambda: [f(**kwargs, log_metric=lambda k, v: None) for f in rewards])
    record = {"machine": device_name(runtime["device"]), "model": args.model, "problems": len(rows),
              "max_new_tokens": job.max_new_tokens, "precision": runtime["autocast"], "greedy_s": round(greedy, 1),
              f"samples_{args.samples}_s": round(sampled, 1), "samples_ratio": round(sampled / greedy, 2),
              "kl_s": round(kl, 1), "kl_ratio": round(kl / greedy, 3),
              "reward_call_64_ms": round(1000 * plain, 2), "with_split_ms": round(1000 * split, 2)}
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
