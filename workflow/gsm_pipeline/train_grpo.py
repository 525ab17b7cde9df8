"""GRPO entry point: parse the job, build TRL's GRPOTrainer with our rewards, train, save.

    python -m gsm_pipeline.train_grpo --config JOB_JSON --parent MODEL --data PROMPTS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .answers import grader
from .errors import DataError, run_main
from .model_io import load_model_and_tokenizer
from .prompts import render_prompt
from .rewards import make_reward_functions
from .rows import load_rows
from .settings.training import GRPOJob
from .training import lora_config, run_stage, trainer_arguments


def grpo_dataset(rows: list[dict[str, Any]], prompt: dict[str, Any], tokenizer, where: str):
    from datasets import Dataset

    if not rows:
        raise DataError(f"{where}: no GRPO prompts")
    return Dataset.from_list([{"prompt": render_prompt(r["question"], prompt, tokenizer), "answer": r["answer"]}
                              for r in rows])


def build_trainer(job: GRPOJob, parent: str, data: str, checkpoints: Path):
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = load_model_and_tokenizer(parent, job.dtype, padding_side="left")
    dataset = grpo_dataset(load_rows(data), job.prompt, tokenizer, data)
    args = trainer_arguments(GRPOConfig, job, checkpoints, num_generations=job.num_generations,
                             max_completion_length=job.max_completion_length,
                             temperature=job.temperature, beta=job.beta)
    rewards = make_reward_functions(job.rewards, job.prompt["answer_format"], grader(job.prompt))
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora_config(job))
    return trainer, tokenizer


def main(argv: list[str] | None = None) -> None:
    run_stage(GRPOJob, build_trainer, "GRPO with TRL's GRPOTrainer.", argv)


if __name__ == "__main__":
    run_main(main)
