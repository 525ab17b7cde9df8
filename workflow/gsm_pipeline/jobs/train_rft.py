"""RFT entry point (rejection-sampling fine-tuning, Yuan et al., arXiv 2308.01825): sample k completions per
training question from the parent, keep the correct, distinct ones (at most m per question), fine-tune on them
with TRL's SFTTrainer, save. TRL has no trainer for it: it is sampling, grading and SFT, all of which are here.

    python -m gsm_pipeline.jobs.train_rft --config JOB_JSON --parent MODEL --data QUESTIONS.jsonl \
        --out MODEL_OUT --checkpoints CKPT_DIR --log-history LOG.json [--sft-rows PREP_SFT.jsonl]

As the paper: a sample that ran out of tokens is not kept, and two samples are the same reasoning when they write
the same equations (else the same text up to whitespace). Where it differs: the model starts from prep SFT instead
of the pretrained model, and trains on the samples alone unless `with_sft_rows` adds prep SFT's rows.
Under several processes each samples its share of the questions and all of them train on every kept sample.
The samples are journaled in the checkpoint folder (stamped with the job, the parent's weights, the questions and
how this machine generates), so a job killed while sampling or training resumes without sampling again, and a
retrained parent samples afresh; the folder goes with the checkpoints once the model is saved.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError, run_main
from ..generation.decoding import generate
from ..generation.journal import Journal, journal_stamp
from ..grading.answers import final_number, grader
from ..model_io import load_model_and_tokenizer
from ..prompts import render_prompt, stop_strings
from ..rows import load_rows
from ..runtime import autocast, job_precision
from ..settings.generation import resolve_engine
from ..settings.training import RFTJob
from ..training.checkpoints import resolved
from ..training.stage import lora_config, run_stage, trainer_arguments, training_dtype
from .train_sft import sft_dataset

ARITHMETIC = set("0123456789().,+-*/×÷ ")


def equations(text: str) -> tuple[str, ...]:
    """The equations a completion writes, in order, without spaces or thousands commas: each '=' with the
    arithmetic before it and the number after it ('48 / 2 = 24', '<<48/2=24>>'). Linear in the text."""
    pieces = text.split("=")
    found = []
    for left, right in zip(pieces, pieces[1:]):
        start = len(left)
        while start and left[start - 1] in ARITHMETIC:
            start -= 1
        lhs = left[start:].replace(" ", "").replace(",", "").lstrip(".")
        rhs = right.lstrip()
        end = 0
        while end < len(rhs) and (rhs[end].isdigit() or rhs[end] in ".," or (end == 0 and rhs[end] == "-")):
            end += 1
        number = rhs[:end].replace(",", "").rstrip(".")
        if any(c.isdigit() for c in lhs) and any(op in lhs[1:] for op in "+-*/×÷") and any(c.isdigit() for c in number):
            found.append(f"{lhs}={number}")
    return tuple(found)


def reasoning_key(completion: str) -> tuple[str, ...] | str:
    """What makes two samples the same reasoning: their equations, or their text up to whitespace without any."""
    return equations(completion) or " ".join(completion.split())


def kept(graded: list[list[dict[str, Any]]], keep: int) -> list[list[str]]:
    """Per question, its correct completions that ended within the token budget, distinct by `reasoning_key`, the
    first `keep` in sample order."""
    out = []
    for samples in graded:
        seen, mine = set(), []
        for s in samples:
            key = reasoning_key(s["completion"])
            if s["correct"] and not s.get("truncated") and key not in seen and len(mine) < keep:
                seen.add(key)
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


def processes() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def together() -> None:
    """Under several processes, wait for all of them (starting the launch's process group before the trainer
    would): rank 0 has tidied the checkpoint folder before any process journals into it."""
    if processes()[1] > 1:
        from accelerate import PartialState

        from ..runtime import on_gpu

        # as the trainer's arguments will start it: gloo between CPU processes
        PartialState(**({} if on_gpu() else {"cpu": True, "backend": "gloo"})).wait_for_everyone()


def share_samples(mine: dict[int, list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    """Every process's graded samples (question index -> samples), the same on every process."""
    if processes()[1] == 1:
        return mine
    from accelerate.utils import gather_object

    return dict(gather_object(list(mine.items())))


def graded_samples(model, tokenizer, rows, prompts, job: RFTJob, checkpoints: Path, parent: str):
    """This process's share of the questions (every world-th), sampled (journaled) and graded; then everyone's."""
    rank, world = processes()
    share = list(range(rank, len(rows), world))
    name = "rft_samples" if world == 1 else f"rft_samples-{rank}"
    together()
    journal = Journal(checkpoints, name, journal_stamp(job, parent, [rows[i] for i in share], resolved(job)))
    outputs = sample(model, tokenizer, [prompts[i] for i in share], job, journal)
    grade = grader(job.prompt.task)
    mine = {i: [{**out, "correct": grade(out["completion"], final_number(rows[i]["answer"]),
                                         job.prompt.answer_format)["correct_strict"]}
                for out in outputs[k * job.samples:(k + 1) * job.samples]] for k, i in enumerate(share)}
    every = share_samples(mine)
    return [every[i] for i in range(len(rows))]


def build_trainer(job: RFTJob, parent: str, data: str, checkpoints: Path, sft_rows: str | None = None):
    from datasets import Dataset, concatenate_datasets
    from trl import SFTConfig, SFTTrainer

    rows = load_rows(data)
    if not rows:
        raise DataError(f"{data}: no training questions")
    if job.with_sft_rows and not sft_rows:
        raise DataError("stages.rft.with_sft_rows: --sft-rows (prep SFT's rows) is required")
    model, tokenizer = load_model_and_tokenizer(parent, training_dtype(job), padding_side="left")
    prompts = [render_prompt(r["question"], job.prompt, tokenizer) for r in rows]
    graded = graded_samples(model, tokenizer, rows, prompts, job, checkpoints, parent)
    chosen = kept(graded, job.keep)
    pairs = [{"prompt": p, "completion": c} for p, mine in zip(prompts, chosen) for c in mine]
    sampled = [s for g in graded for s in g]
    record = {"sampled": {"questions": len(rows), "sampled": len(sampled),
                          "correct": sum(s["correct"] for s in sampled),
                      "truncated": sum(bool(s.get("truncated")) for s in sampled), "kept": len(pairs),
                      "questions_kept": sum(bool(m) for m in chosen),
                      "generated_tokens": sum(s["completion_tokens"] for s in sampled)}}
    print(f"rft: kept {len(pairs)} correct, distinct completions of {len(sampled)} sampled, for "
          f"{record['sampled']['questions_kept']} of {len(rows)} questions")
    if not pairs:
        raise DataError(f"{data}: no sampled completion was correct ({len(sampled)} samples of {len(rows)} "
                        f"questions from {parent}): RFT has nothing to train on (more stages.rft.samples?)")
    tokenizer.padding_side = "right"  # training pads as the SFT stages do
    dataset = Dataset.from_list(pairs)
    if job.with_sft_rows:
        extra = sft_dataset(load_rows(sft_rows), job.prompt, tokenizer, sft_rows)
        record["sampled"]["sft_rows"] = len(extra)
        dataset = concatenate_datasets([extra, dataset])
    args = trainer_arguments(SFTConfig, job, checkpoints)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(job))
    return trainer, tokenizer, record


def main(argv: list[str] | None = None) -> None:
    run_stage(RFTJob, build_trainer, "Rejection-sampling fine-tuning: sample, keep the correct, SFT.", argv,
              reads={"sft_rows": "prep SFT's rows, trained on beside the samples (with_sft_rows)"})


if __name__ == "__main__":
    run_main(main)
