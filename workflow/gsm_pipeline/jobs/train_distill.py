"""On-policy distillation entry point: parse the job, build TRL's DistillationTrainer (the student samples its own
completions of the questions; the teacher's next-token distribution on them is the target), train, save.

    python -m gsm_pipeline.jobs.train_distill --config JOB_JSON --parent MODEL --data QUESTIONS.jsonl \
        --teacher TEACHER_MODEL --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError, ModelError, run_main
from ..model_io import load_model_and_tokenizer
from ..prompts import render_prompt
from ..rows import load_rows
from ..settings.distillation import DistillJob
from ..training.stage import lora_config, parameter_count, run_stage, trainer_arguments, training_dtype


def same_vocabulary(student_tokenizer, teacher_tokenizer, teacher: str) -> None:
    """The loss compares the two models' distributions token by token, so they must share one vocabulary."""
    if student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise ModelError(f"{teacher}: the teacher's tokenizer differs from the student's (the distillation loss "
                         "compares their next-token distributions over one vocabulary): choose a teacher of the "
                         "same model family")


def build_trainer(job: DistillJob, parent: str, data: str, checkpoints: Path, teacher: str | None = None):
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    if teacher is None:
        raise DataError(f"stages.{job.stage}.teacher: --teacher (the teacher's model folder) is required")
    rows = load_rows(data)
    if not rows:
        raise DataError(f"{data}: no training questions")
    model, tokenizer = load_model_and_tokenizer(parent, training_dtype(job), padding_side="left")
    # the teacher only scores: it is held as its folder stores it (model.dtype), and never updated
    teacher_model, teacher_tokenizer = load_model_and_tokenizer(teacher, job.dtype, padding_side="left")
    same_vocabulary(tokenizer, teacher_tokenizer, teacher)
    dataset = Dataset.from_list([{"prompt": render_prompt(r["question"], job.prompt, tokenizer)} for r in rows])
    args = trainer_arguments(DistillationConfig, job, checkpoints)
    trainer = DistillationTrainer(model=model, teacher_model=teacher_model, args=args, train_dataset=dataset,
                                  processing_class=tokenizer, peft_config=lora_config(job))
    # the compute axis charges the teacher's forward passes over every trained token (reporting/compute.py)
    return trainer, tokenizer, {"teacher": {"model": teacher, "parameters": parameter_count(teacher_model)}}


def main(argv: list[str] | None = None) -> None:
    run_stage(DistillJob, build_trainer, "On-policy distillation with TRL's DistillationTrainer.", argv,
              reads={"teacher": "the teacher's model folder"})


if __name__ == "__main__":
    run_main(main)
