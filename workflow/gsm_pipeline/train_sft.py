"""SFT entry point (prep_sft and full_sft): parse the job, build TRL's SFTTrainer, train, save.

    python -m gsm_pipeline.train_sft --config JOB_JSON --parent MODEL --data ROWS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import load_rows
from .errors import DataError, run_main
from .prompts import render_prompt, render_target
from .training import load_model_and_tokenizer, lora_config, run_stage, trainer_arguments


def sft_dataset(rows: list[dict[str, Any]], prompt: dict[str, Any], tokenizer, where: str):
    """Prompt-completion rows: the prompt is rendered exactly as evaluation renders it."""
    from datasets import Dataset

    if not rows:
        raise DataError(f"{where}: no training rows")
    return Dataset.from_list([
        {"prompt": render_prompt(r["question"], prompt, tokenizer),
         "completion": render_target(r["reasoning"], r["answer"], prompt)} for r in rows])


def build_trainer(job: dict[str, Any], parent: str, data: str, checkpoints: Path):
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_model_and_tokenizer(parent, job["dtype"])
    dataset = sft_dataset(load_rows(data), job["prompt"], tokenizer, data)
    args = trainer_arguments(SFTConfig, job, checkpoints, max_length=job["max_length"],
                             completion_only_loss=job["completion_only_loss"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(job))
    too_long = sum(len(ids) >= job["max_length"] for ids in trainer.train_dataset["input_ids"])
    if too_long == len(trainer.train_dataset):
        raise DataError(f"{data}: every row is truncated at stages.{job['stage']}.max_length={job['max_length']}")
    return trainer, tokenizer


def main(argv: list[str] | None = None) -> None:
    run_stage(build_trainer, "Supervised fine-tuning with TRL's SFTTrainer.", argv)


if __name__ == "__main__":
    run_main(main)
