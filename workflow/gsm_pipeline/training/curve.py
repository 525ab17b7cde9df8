"""Learning-curve points: the model at chosen optimizer steps, kept on purpose as plain model folders.

The trainer saves a checkpoint at each kept step (besides its own `save_steps`), and once that checkpoint is on
disk its weights, config and tokenizer are hard-linked into `<stage folder>/step-<N>/model/` (linked, so no copy
is made and the resume checkpoints' `save_total_limit` rotation cannot delete them; the optimizer state is not
kept). A folder appears whole or not at all (written beside, then renamed), and a resumed run first recovers
any kept step whose checkpoint was saved before a kill but not yet linked.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError

MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json",
               "tokenizer*", "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt")


def step_folder(stage_dir: Path, step: int) -> Path:
    """Beside the stage's own `model/`, so the point's `eval/` sits next to its model as the stage's does."""
    return stage_dir / f"step-{step}" / "model"


def keep(checkpoint: Path, target: Path) -> None:
    """A plain model folder of a checkpoint's weights, linked where the file system allows it."""
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for pattern in MODEL_FILES:
        for source in checkpoint.glob(pattern):
            try:
                os.link(source, partial / source.name)
            except OSError:
                shutil.copy2(source, partial / source.name)
    os.replace(partial, target)


def keep_steps_callback(steps: list[int], stage_dir: Path, checkpoints: Path, stage: str):
    """Saves at each of `steps` and keeps that checkpoint's model in `stage_dir` (main process only)."""
    from transformers import TrainerCallback

    wanted = set(steps)

    class KeepSteps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            # A stage trained by epochs learns its length only here (rows / batch): a listed step at or past
            # the end would never be saved, and its evaluation would find no model after the whole run.
            late = sorted(s for s in wanted if s >= state.max_steps)
            if late:
                raise ConfigError(f"stages.{stage}.eval_checkpoints: step {late[0]} is not before the stage's "
                                  f"last step ({state.max_steps} optimizer steps on this data), which the stage's "
                                  "own evaluation covers")
            if state.is_world_process_zero:
                for step in wanted:
                    if (checkpoints / f"checkpoint-{step}").is_dir():
                        keep(checkpoints / f"checkpoint-{step}", step_folder(stage_dir, step))

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in wanted:
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            if state.global_step in wanted and state.is_world_process_zero:
                keep(checkpoints / f"checkpoint-{state.global_step}", step_folder(stage_dir, state.global_step))

    return KeepSteps()
