"""Training throughput: our SFT and GRPO settings against plain TRL as the seeds use it, in one run.

    python tests/bench/bench_training.py --data GSM8K_TRAIN.jsonl --tokenizer resources/model      # GPU
    python tests/bench/bench_training.py --smoke                                                   # CPU check

For each architecture (random init: weights do not change the cost of a fixed workload) and each variant, the
same GSM8K train rows and about the same number of optimizer updates are timed after a warm-up: SFT one
update; GRPO whole generation rounds after an untimed first one (a variant generating for several updates per
round is timed over whole rounds). SFT reports real (non-padding) tokens per second; GRPO completions per
second with 8 generations per prompt and 256 completion tokens (a random model almost never samples EOS, and
`min_new_tokens` makes sure). Peak GPU memory per variant. Writes a JSON file and prints a markdown table with
ratios to each baseline; tests/bench/README.md holds the measured table.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARCHS = {
    "smollm2-135m": ("llama", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                                   tie_word_embeddings=True)),
    "qwen2.5-0.5b": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True)),
    "tiny": ("llama", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=True)),
}
LIGER = importlib.util.find_spec("liger_kernel") is not None
VLLM = importlib.util.find_spec("vllm") is not None

# Plain TRL first (the baselines, with TRL's default gradient checkpointing), then ours: the settings the GPU
# presets use. Keys in JOB_KEYS are the pipeline's own stage settings, the rest TRL training arguments.
JOB_KEYS = {"gradient_checkpointing", "liger_kernel", "torch_compile", "engine"}
TRL = {"gradient_checkpointing": True}
SFT_VARIANTS = {
    "trl_padded_b16": {**TRL, "per_device_train_batch_size": 16},
    "trl_packed_b16": {**TRL, "per_device_train_batch_size": 16, "packing": True},
    "ours": {"per_device_train_batch_size": 64, "packing": True, "padding_free": True,
             "liger_kernel": LIGER, "model_init_kwargs": {"attn_implementation": "sdpa"}},
}
GRPO_VARIANTS = {
    "trl_default": {**TRL},
    "trl_genbatch256": {**TRL, "generation_batch_size": 256},
    # engine continuous = TRL's use_transformers_continuous_batching (generation.engine decides it)
    "trl_genbatch256_paged": {**TRL, "generation_batch_size": 256, "engine": "continuous"},
    "trl_b64_genbatch512_paged": {**TRL, "per_device_train_batch_size": 64, "generation_batch_size": 512,
                                  "engine": "continuous"},
    "ours": {"per_device_train_batch_size": 64, "generation_batch_size": 512,
             "engine": "loop" if VLLM else "continuous", "use_vllm": VLLM, "liger_kernel": LIGER},
}


def split_variant(extra: dict) -> tuple[dict, dict]:
    """(the pipeline's stage settings, TRL training arguments) of a variant."""
    return ({k: v for k, v in extra.items() if k in JOB_KEYS}, {k: v for k, v in extra.items() if k not in JOB_KEYS})


def numerics(engine: str = "auto") -> dict:
    """bf16 weights and autocast on a GPU; fp32 on the CPU smoke run (what mixed_precision auto picks varies by
    CPU). Continuous-batching rollouts fail under autocast in TRL 1.16 (README, "Generation engines"): those
    variants train their bf16 weights without autocast, the one way TRL runs them."""
    autocast = gpu() and engine != "continuous"
    return {"dtype": "bfloat16" if gpu() else "float32", "mixed_precision": "bf16" if autocast else "no"}


def step_clock():
    """A callback timing optimizer updates (the first one is the warm-up) and the tokens seen by each."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends, self.tokens = [], []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            self.tokens.append(state.num_input_tokens_seen)

    return StepClock()


def save_random_model(arch: str, tokenizer_dir: str, out: Path, dtype) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kind, sizes = ARCHS[arch]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = AutoConfig.for_model(kind, **sizes, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(dtype)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def peak_memory_gb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def reset_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_sft(model_dir: Path, rows_path: Path, extra: dict, updates: int, max_length: int, work: Path) -> dict:
    from gsm_pipeline.jobs.train_sft import build_trainer
    from gsm_pipeline.settings.training import SFTJob

    settings, extra = split_variant(extra)
    job = {"stage": "full_sft", "seed": 0, **numerics(), "finetune": "full", **settings,
           "lora": None, "completion_only_loss": True, "max_length": max_length,
           "prompt": {"answer_format": "tagged", "chat_template": True, "confidence": False},
           "training_args": {"max_steps": updates + 1, "save_strategy": "no", "learning_rate": 1e-5,
                             "include_num_input_tokens_seen": "non_padding", **extra}}
    trainer, _ = build_trainer(SFTJob.model_validate(job), str(model_dir), str(rows_path), work)
    clock = step_clock()
    trainer.add_callback(clock)
    trainer.train()
    seconds = clock.ends[-1] - clock.ends[0]
    return {"tokens_per_s": (clock.tokens[-1] - clock.tokens[0]) / seconds, "seconds": seconds}


def run_grpo(model_dir: Path, rows_path: Path, extra: dict, updates: int, completion: int, work: Path) -> dict:
    from gsm_pipeline.jobs.train_rl import build_trainer
    from gsm_pipeline.settings.training import RLJob

    per_device = extra.get("per_device_train_batch_size", 8)
    accumulation = extra.get("gradient_accumulation_steps", 1)
    # TRL generates once per `steps_per_generation` micro-batches (its generation batch over the per-device
    # batch, one process; default the accumulation): time whole generation rounds, after an untimed first one,
    # or a step that only reads rollouts generated before would count as one that made them
    micro = extra["generation_batch_size"] // per_device if "generation_batch_size" in extra else accumulation
    per_round = max(1, micro // accumulation)  # optimizer updates per generation round
    timed = -(-updates // per_round) * per_round
    settings, extra = split_variant(extra)
    job = {"stage": "rl", "seed": 0, **numerics(settings.get("engine", "auto")), "finetune": "full", **settings,
           "lora": None, "rewards": ["format", "correctness"], "num_generations": 8,
           "max_completion_length": completion, "temperature": 1.0, "beta": 0.0,
           "prompt": {"answer_format": "tagged", "chat_template": True, "confidence": False},
           "training_args": {"max_steps": per_round + timed, "save_strategy": "no", "learning_rate": 1e-6,
                             "generation_kwargs": {"min_new_tokens": completion}, **extra}}
    trainer, _ = build_trainer(RLJob.model_validate(job), str(model_dir), str(rows_path), work)
    clock = step_clock()
    trainer.add_callback(clock)
    trainer.train()
    seconds = clock.ends[-1] - clock.ends[per_round - 1]
    completions = timed * per_device * accumulation
    return {"completions_per_s": completions / seconds, "seconds": seconds, "completions": completions}


def gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def table(results: list[dict], metric: str, baselines: list[str]) -> str:
    lines = [f"| arch | variant | {metric} | peak GB | " + " | ".join(f"x {b}" for b in baselines) + " |",
             "|" + " --- |" * (4 + len(baselines))]
    for r in results:
        base = {b: next(x[metric] for x in results if x["arch"] == r["arch"] and x["variant"] == b)
                for b in baselines}
        ratios = " | ".join(f"{r[metric] / base[b]:.2f}" for b in baselines)
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}"
        lines.append(f"| {r['arch']} | {r['variant']} | {r[metric]:.1f} | {peak} | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    import torch

    from gsm_pipeline.data import load_test_rows
    from gsm_pipeline.rows import write_jsonl

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="GSM8K train.jsonl (question/answer rows)")
    parser.add_argument("--tokenizer", help="tokenizer folder (SmolLM2's, e.g. resources/model)")
    parser.add_argument("--arch", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b"], choices=list(ARCHS))
    parser.add_argument("--updates", type=int, default=10, help="timed optimizer updates per variant")
    parser.add_argument("--out", default="results/bench/bench_training.json")
    parser.add_argument("--variants", nargs="+", choices=sorted({*SFT_VARIANTS, *GRPO_VARIANTS}),
                        help="run these variants only (a name of both kinds runs both; default: all)")
    parser.add_argument("--rows", type=int, help="the first N rows of --data (each trainer tokenizes them all)")
    parser.add_argument("--completion-length", type=int, default=256, help="forced GRPO completion tokens")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 1 update, CPU: checks the script runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    if args.smoke:
        from conftest import arithmetic_rows
        from tiny_model import build_tiny_model

        tokenizer_dir, archs, updates, completion = str(build_tiny_model(work / "tok")), ["tiny"], 1, 8
        write_jsonl(work / "raw.jsonl", arithmetic_rows(256, seed=0))
        rows = load_test_rows(work / "raw.jsonl")
        sft, grpo = {"trl_padded_b16": SFT_VARIANTS["trl_padded_b16"], "ours": SFT_VARIANTS["ours"]}, {
            "trl_default": {}, "ours": {"per_device_train_batch_size": 16, "generation_batch_size": 32,
                                        "engine": "continuous"}}
    else:
        tokenizer_dir, archs, updates, completion = args.tokenizer, args.arch, args.updates, args.completion_length
        rows = load_test_rows(args.data)[: args.rows]
        sft, grpo = ({k: v for k, v in table.items() if not args.variants or k in args.variants}
                     for table in (SFT_VARIANTS, GRPO_VARIANTS))
    rows_path = work / "rows.jsonl"
    write_jsonl(rows_path, rows)
    dtype = torch.bfloat16 if gpu() else torch.float32
    device = torch.cuda.get_device_name() if gpu() else "cpu"
    results = []

    def record(result: dict) -> None:  # after every variant: a run stopped at the GPU proof's allowance keeps it
        results.append(result)
        print(json.dumps(result), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"device": device, "liger": LIGER, "vllm": VLLM, "results": results},
                                             indent=2))

    for arch in archs:
        model_dir = save_random_model(arch, tokenizer_dir, work / arch, dtype)
        for name, extra in sft.items():
            reset_memory()
            out = run_sft(model_dir, rows_path, extra, updates, 512, work / f"sft_{arch}_{name}")
            record({"kind": "sft", "arch": arch, "variant": name, **out, "peak_gb": peak_memory_gb()})
        for name, extra in grpo.items():
            reset_memory()
            out = run_grpo(model_dir, rows_path, extra, updates, completion, work / f"grpo_{arch}_{name}")
            record({"kind": "grpo", "arch": arch, "variant": name, **out, "peak_gb": peak_memory_gb()})
    sft_rows, grpo_rows = [r for r in results if r["kind"] == "sft"], [r for r in results if r["kind"] == "grpo"]
    sft_base = [v for v in ("trl_padded_b16", "trl_packed_b16") if v in sft]
    grpo_base = [v for v in ("trl_default", "trl_b64_genbatch512_paged") if v in grpo]
    print(f"device: {device}\n\nSFT\n" + table(sft_rows, "tokens_per_s", sft_base))
    print("\nGRPO\n" + table(grpo_rows, "completions_per_s", grpo_base))


if __name__ == "__main__":
    main()
