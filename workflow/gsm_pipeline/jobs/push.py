"""`gsm-pipeline push MODEL_FOLDER REPO_ID`: publish a trained model to the Hugging Face Hub, when asked (the
workflow never pushes). The model folder's card gains the model's evaluations (every metrics.json under its
stage folder's eval/), and the folder is uploaded as it is: merged weights, tokenizer, chat template and card.
The results folder is not changed: the upload is staged in a temporary copy made of links.

    gsm-pipeline push results/rl-3d058d47/model my-name/smollm2-gsm-rl [--private]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ModelError, run_main
from ..model_card import card_text, with_evaluations
from ..model_io import check_model_dir


def evaluations(model: Path) -> list[dict[str, Any]]:
    """The model's evaluations: results/<stage>-<chain>/eval/<prompt>/<testset>/metrics.json beside its folder."""
    return [json.loads(path.read_text()) for path in sorted(model.parent.glob("eval/*/*/metrics.json"))]


def staged(model: Path, into: Path) -> Path:
    """A copy of the model folder made of links (copies where the file system refuses), its card extended with
    the evaluations."""
    folder = into / model.name
    folder.mkdir()
    for path in model.iterdir():
        if path.is_file() and path.name != "README.md":
            try:
                os.link(path, folder / path.name)
            except OSError:
                shutil.copy2(path, folder / path.name)
    card = (model / "README.md").read_text() if (model / "README.md").is_file() else card_text(
        base_model=str(model), title=model.parent.name, trained=["Trained by gsm-pipeline."])
    (folder / "README.md").write_text(with_evaluations(card, evaluations(model)))
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Push a trained model folder to the Hugging Face Hub.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="a trained model folder (results/<stage>-<chain>/model)")
    parser.add_argument("repo_id", help="the Hub repository, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    args = parser.parse_args(argv)
    model = check_model_dir(args.model)
    if args.repo_id.count("/") != 1:
        raise ModelError(f"{args.repo_id}: a Hub repository is owner/name")
    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        folder = staged(model, Path(tmp))
        try:
            api.create_repo(args.repo_id, private=args.private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=args.repo_id, commit_message=f"gsm-pipeline: {model}")
        except Exception as exc:  # network, authentication, permissions: one line, the library's words
            raise ModelError(f"{args.repo_id}: push failed ({str(exc).splitlines()[0] if str(exc) else exc})") \
                from None
    print(f"pushed {model} to https://huggingface.co/{args.repo_id}")


if __name__ == "__main__":
    run_main(main)
