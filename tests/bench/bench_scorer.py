"""The best-of-n scorer (mean completion log-probability under the policy) batched by a logits budget against the
fixed batch of 16 rows it replaced, each variant in a fresh process: seconds, peak resident memory, and the largest
score difference. Real model, GSM8K test questions in the tagged chat prompt, their reference solutions as the
completions; prints the machine and the ratios.

    python tests/bench/bench_scorer.py --model resources/model --questions path/to/gsm8k/test.jsonl --problems 128
    python tests/bench/bench_scorer.py --smoke        # the tiny test model, to check the script runs
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def fixed_batch_scorer(model, tokenizer, batch_size: int = 16):
    """The baseline: 16 rows a forward, the whole batch's logits in fp32 and their log-softmax."""
    import torch

    def score(prompts, completions):
        scores = []
        tokenizer.padding_side = "right"
        for start in range(0, len(prompts), batch_size):
            p, c = prompts[start:start + batch_size], completions[start:start + batch_size]
            n_prompt = [len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in p]
            batch = tokenizer([a + b for a, b in zip(p, c)], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                logits = model(**batch).logits[:, :-1].float()
            logprobs = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
            mask = batch["attention_mask"][:, 1:].clone()
            for row, k in enumerate(n_prompt):
                mask[row, : max(k - 1, 0)] = 0
            scores += ((logprobs * mask).sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
        return scores
    return score


def run_variant(variant: str, model_dir: str, rows: list[dict]) -> dict:
    from gsm_pipeline.generation.sampling import policy_scorer
    from gsm_pipeline.model_io import load_model_and_tokenizer
    from gsm_pipeline.prompts import render_prompt
    from gsm_pipeline.settings.prompt import PromptSpec

    model, tokenizer = load_model_and_tokenizer(model_dir, dtype="float32")
    model.eval()
    spec = PromptSpec(answer_format="tagged", chat_template=True)
    prompts = [render_prompt(r["question"], spec, tokenizer) for r in rows]
    completions = [r["answer"] for r in rows]
    scorer = fixed_batch_scorer(model, tokenizer) if variant == "fixed16" else policy_scorer(model, tokenizer)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    scores = scorer(prompts, completions)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"variant": variant, "seconds": seconds, "peak_rss_gb": peak / 1e6,
            "growth_gb": (peak - before) / 1e6, "scores": scores}


def main() -> None:
    from bench_generation import device_name

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a model folder (resources/model: SmolLM2-135M-Instruct)")
    parser.add_argument("--questions", help="GSM8K test.jsonl (question/answer rows)")
    parser.add_argument("--problems", type=int, default=128)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # a child process's one variant
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.model, json.loads(Path(args.rows).read_text()))))
        return
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="bench_scorer_"))
    if args.smoke:
        from conftest import arithmetic_rows
        from tiny_model import build_tiny_model

        model, rows = str(build_tiny_model(work / "tiny")), arithmetic_rows(24, seed=0)
    else:
        model = args.model
        rows = [json.loads(line) for line in Path(args.questions).read_text().splitlines()[: args.problems]]
    (work / "rows.json").write_text(json.dumps(rows))
    results = {}
    for variant in ("fixed16", "budget"):  # each in a fresh process: its own peak memory
        done = subprocess.run([sys.executable, __file__, "--variant", variant, "--model", model,
                               "--rows", str(work / "rows.json")], capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    base, new = results["fixed16"], results["budget"]
    drift = max(abs(a - b) for a, b in zip(base["scores"], new["scores"]))
    print(f"device: {device_name('cpu')}, fp32; {len(rows)} completions scored")
    print("| variant | seconds | peak RSS GB | growth while scoring GB |\n| --- | --- | --- | --- |")
    for r in (base, new):
        print(f"| {r['variant']} | {r['seconds']:.1f} | {r['peak_rss_gb']:.2f} | {r['growth_gb']:.2f} |")
    print(f"budget / fixed16: time x{new['seconds'] / base['seconds']:.2f}, growth "
          f"x{new['growth_gb'] / max(base['growth_gb'], 1e-6):.2f}; largest score difference {drift:.2e}")


if __name__ == "__main__":
    main()
