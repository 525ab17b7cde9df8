"""RL entry point: parse the job, build TRL's GRPOTrainer (or RLOOTrainer, `rl: rloo`) with our rewards, train,
save.

    python -m gsm_pipeline.jobs.train_rl --config JOB_JSON --parent MODEL --data PROMPTS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError, run_main
from ..grading.answers import grader
from ..grading.rewards import logging_group_split, make_reward_functions
from ..model_io import load_model_and_tokenizer
from ..prompts import render_prompt
from ..rows import load_rows
from ..settings.prompt import PromptSpec
from ..settings.training import RLJob
from ..training.methods import RL_METHODS, load
from ..training.stage import lora_config, run_stage, trainer_arguments, training_dtype


def rl_dataset(rows: list[dict[str, Any]], prompt: PromptSpec, tokenizer, where: str):
    from datasets import Dataset

    if not rows:
        raise DataError(f"{where}: no RL prompts")
    return Dataset.from_list([{"prompt": render_prompt(r["question"], prompt, tokenizer), "answer": r["answer"]}
                              for r in rows])


def trainer_classes(rl: str):
    """The TRL config and trainer of a row's RL method (training/methods.py): both take the same rewards, prompts
    and stage settings."""
    method = RL_METHODS[rl]
    return load(method.config), load(method.trainer)


def build_trainer(job: RLJob, parent: str, data: str, checkpoints: Path):
    config_cls, trainer_cls = trainer_classes(job.rl)
    model, tokenizer = load_model_and_tokenizer(parent, training_dtype(job), padding_side="left")
    dataset = rl_dataset(load_rows(data), job.prompt, tokenizer, data)
    args = trainer_arguments(config_cls, job, checkpoints)
    grade = grader(job.prompt.task)
    rewards = logging_group_split(make_reward_functions(job.rewards, job.prompt.answer_format, grade, job.seed),
                                  job.prompt.answer_format, job.num_generations, args.reward_weights, grade)
    trainer = trainer_cls(model=model, reward_funcs=rewards, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora_config(job))
    return trainer, tokenizer


def main(argv: list[str] | None = None) -> None:
    run_stage(RLJob, build_trainer, "The RL stage: TRL's GRPOTrainer, or RLOOTrainer (rl: rloo).", argv)


if __name__ == "__main__":
    run_main(main)
