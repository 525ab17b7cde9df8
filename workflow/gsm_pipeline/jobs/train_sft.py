"""SFT entry point (prep_sft and full_sft): parse the job, build TRL's SFTTrainer, train, save.

    python -m gsm_pipeline.jobs.train_sft --config JOB_JSON --parent MODEL --data ROWS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError, run_main
from ..model_io import load_model_and_tokenizer
from ..prompts import render_prompt, render_target
from ..rows import load_rows
from ..settings.prompt import PromptSpec
from ..settings.training import SFTJob
from ..training.stage import lora_config, run_stage, trainer_arguments, training_dtype


def load_confidence_targets(path: str | None, prompt: PromptSpec) -> dict[str, float]:
    if not prompt.confidence:
        return {}
    if path is None:
        raise DataError("this experiment states confidence: --confidence-targets is required")
    return {row["id"]: row["confidence"] for row in load_rows(path)}


def sft_dataset(rows: list[dict[str, Any]], prompt: PromptSpec, tokenizer, where: str,
                confidence: dict[str, float] | None = None, train_data: str = "main"):
    """Prompt-completion rows: the prompt is rendered exactly as evaluation renders it; the target's
    reasoning is the main or the socratic one; with confidence on, each target ends with that row's
    measured confidence."""
    from datasets import Dataset

    if not rows:
        raise DataError(f"{where}: no training rows")
    field = "reasoning" if train_data == "main" else "reasoning_socratic"
    lacking = next((r["id"] for r in rows if not isinstance(r.get(field), str)), None)
    if lacking is not None:
        raise DataError(f"{where}: row {lacking!r} has no {field} (train_data: {train_data} needs a task that "
                        "provides it)")
    if prompt.confidence:
        missing = [r["id"] for r in rows if r["id"] not in (confidence or {})]
        if missing:
            raise DataError(f"{where}: no confidence target for row {missing[0]!r} ({len(missing)} rows lack one)")
    return Dataset.from_list([
        {"prompt": render_prompt(r["question"], prompt, tokenizer),
         "completion": render_target(r[field], r["answer"], prompt, (confidence or {}).get(r["id"]))}
        for r in rows])


def build_trainer(job: SFTJob, parent: str, data: str, checkpoints: Path,
                  confidence_targets: str | None = None):
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_model_and_tokenizer(parent, training_dtype(job))
    targets = load_confidence_targets(confidence_targets, job.prompt)
    dataset = sft_dataset(load_rows(data), job.prompt, tokenizer, data, targets, job.train_data)
    args = trainer_arguments(SFTConfig, job, checkpoints)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(job))
    too_long = sum(len(ids) >= job.max_length for ids in trainer.train_dataset["input_ids"])
    if too_long == len(trainer.train_dataset):
        raise DataError(f"{data}: every row is truncated at stages.{job.stage}.max_length={job.max_length}")
    return trainer, tokenizer


def main(argv: list[str] | None = None) -> None:
    run_stage(SFTJob, build_trainer, "Supervised fine-tuning with TRL's SFTTrainer.", argv,
              reads={"confidence_targets": "per-row confidence targets (JSONL; SFT with confidence on)"})


if __name__ == "__main__":
    run_main(main)
