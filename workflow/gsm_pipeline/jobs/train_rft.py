"""RFT entry point (rejection-sampling fine-tuning, Yuan et al., arXiv 2308.01825): sample k completions per
training question from the parent, keep the correct, distinct ones (at most m per question), fine-tune on them
with TRL's SFTTrainer, save. TRL has no trainer for it: it is sampling, grading and SFT, all of which are here.

    python -m gsm_pipeline.jobs.train_rft --config JOB_JSON --parent MODEL --data QUESTIONS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json

The samples are journaled in the checkpoint folder (stamped with the job, the parent's weights and the questions),
so a job killed while sampling or training resumes without sampling again, and a retrained parent samples afresh.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError, run_main
from ..generation.decoding import generate
from ..generation.journal import Journal
from ..grading.answers import final_number, grader
from ..model_io import load_model_and_tokenizer, weights_stamp
from ..prompts import render_prompt, stop_strings
from ..rows import load_rows
from ..runtime import autocast, job_precision
from ..settings.generation import resolve_engine
from ..settings.training import RFTJob
from ..training.stage import lora_config, run_stage, trainer_arguments


def kept(graded: list[list[dict[str, Any]]], keep: int) -> list[list[str]]:
    """Per question, its correct completions, distinct up to whitespace, the first `keep` in sample order."""
    out = []
    for samples in graded:
        seen, mine = set(), []
        for s in samples:
            text = " ".join(s["completion"].split())
            if s["correct"] and text not in seen and len(mine) < keep:
                seen.add(text)
                mine.append(s["completion"])
        out.append(mine)
    return out


def sample(model, tokenizer, prompts: list[str], job: RFTJob, journal: Journal | None) -> list[dict[str, Any]]:
    """`job.samples` completions per prompt (sample j of prompt i at i * samples + j), through the one engine."""
    repeated = [p for p in prompts for _ in range(job.samples)]
    engine, _ = resolve_engine(job.engine, model.device)
    with autocast(job_precision(job)):
        return generate(model, tokenizer, repeated, max_new_tokens=job.max_new_tokens, batch_size=job.batch_size,
                        stop_strings=stop_strings(job.prompt), seed=job.seed, engine=engine, do_sample=True,
                        temperature=job.temperature, done=journal.load() if journal else None,
                        on_batch=journal.append if journal else None)


def build_trainer(job: RFTJob, parent: str, data: str, checkpoints: Path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = load_rows(data)
    if not rows:
        raise DataError(f"{data}: no training questions")
    model, tokenizer = load_model_and_tokenizer(parent, job.dtype, padding_side="left")
    prompts = [render_prompt(r["question"], job.prompt, tokenizer) for r in rows]
    # one process samples with a journal; under a multi-process launch each rank samples alike, unjournaled
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    stamp = {"job": job.stamp(), "parent": weights_stamp(parent), "rows": [r["id"] for r in rows]}
    journal = Journal(checkpoints, "rft_samples", stamp) if single else None
    outputs = sample(model, tokenizer, prompts, job, journal)
    grade = grader(job.prompt.task)
    graded = [[{**out, "correct": grade(out["completion"], final_number(row["answer"]),
                                        job.prompt.answer_format)["correct_strict"]}
               for out in outputs[i * job.samples:(i + 1) * job.samples]] for i, row in enumerate(rows)]
    chosen = kept(graded, job.keep)
    pairs = [{"prompt": p, "completion": c} for p, mine in zip(prompts, chosen) for c in mine]
    record = {"rft": {"questions": len(rows), "sampled": len(outputs),
                      "correct": sum(s["correct"] for g in graded for s in g), "kept": len(pairs),
                      "questions_kept": sum(bool(m) for m in chosen),
                      "generated_tokens": sum(out["completion_tokens"] for out in outputs)}}
    print(f"rft: kept {len(pairs)} correct, distinct completions of {len(outputs)} sampled, for "
          f"{record['rft']['questions_kept']} of {len(rows)} questions")
    if not pairs:
        raise DataError(f"{data}: no sampled completion was correct ({len(outputs)} samples of {len(rows)} "
                        f"questions from {parent}): RFT has nothing to train on (more stages.rft.samples?)")
    tokenizer.padding_side = "right"  # training pads as the SFT stages do
    args = trainer_arguments(SFTConfig, job, checkpoints)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                         peft_config=lora_config(job))
    return trainer, tokenizer, record


def main(argv: list[str] | None = None) -> None:
    run_stage(RFTJob, build_trainer, "Rejection-sampling fine-tuning: sample, keep the correct, SFT.", argv)


if __name__ == "__main__":
    run_main(main)
