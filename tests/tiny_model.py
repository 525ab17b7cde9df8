"""A tiny randomly initialised model of SmolLM2's architecture (Llama), with a
byte-level BPE tokenizer trained here on generated problems: no network needed."""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus(n: int = 200) -> list[str]:
    from gsm_pipeline.config import DataConfig
    from gsm_pipeline.data import build_splits
    from gsm_pipeline.grading.formats import FORMATS
    from gsm_pipeline.prompts import render_target

    splits, _ = build_splits(DataConfig(prep_sft_size=n, full_sft_size=8, rl_size=8, test_size=8))
    texts = [r["question"] + "\n" + r["reasoning"] + "\n#### " + r["answer"] for r in splits["prep_sft"]]
    # Repeated so the tokenizer learns the instructions and tags as few tokens each.
    texts += 50 * ([f.instruction for f in FORMATS.values()] + [render_target("1 + 2 = 3", "3", {"answer_format": f})
                                                  for f in ("tagged", "gsm8k", "boxed")])
    texts += 50 * ["<confidence>0.85</confidence> Question: What is 3 + 4? Answer:"]
    return texts


def build_tiny_model(out: Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1])))
