"""Evaluation entry point: generate on a test set, grade, write per-example rows and metrics.

    gsm-pipeline evaluate --model PATH [--data TEST.jsonl] [--answer-format tagged] [--raw] [--out DIR]
    gsm-pipeline evaluate --model PATH --data TEST.jsonl --protocol lm-eval-gsm8k --fewshot TRAIN.jsonl

Within the DAG the rule passes the job's settings as --config JSON and run labels as --meta.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, get_args

from ..data import default_fewshot_rows, default_test_rows, load_test_rows
from ..errors import ConfigError, DataError, run_main
from ..generation.journal import Journal, journal_stamp, journaled_generate
from ..generation.sampling import policy_scorer, reward_model_scorer, sample_metrics
from ..grading import harness
from ..grading.answers import final_number, grader
from ..grading.formats import FORMATS
from ..grading.metrics import calibration, summarize
from ..grading.protocols import GRADED_BY, PROTOCOLS, graders_on
from ..grading.protocols import version as lm_eval_version
from ..model_io import check_model_dir
from ..prompts import render_prompt
from ..rows import write_jsonl
from ..runtime import MIXED_PRECISION, autocast, load_for_generation, seed_everything
from ..settings.data import DataConfig
from ..settings.evaluation import EvalJob
from ..settings.prompt import PromptSpec


def prompts_for(rows: list[dict[str, Any]], spec: PromptSpec, tokenizer,
                fewshot: list[dict[str, Any]] | None = None) -> list[str]:
    """Every row's prompt, in order: lm-eval's own contexts for a protocol (worked examples drawn from `fewshot`,
    the task's train split), else this project's prompt of each question."""
    if spec.protocol:
        return harness.contexts(spec.protocol, rows, fewshot or [])
    return [render_prompt(r["question"], spec, tokenizer) for r in rows]


def evaluate_rows(model, tokenizer, rows: list[dict[str, Any]], job: EvalJob, prompts: list[str],
                  journal: Journal | None = None, token_ids: bool = False) -> list[dict[str, Any]]:
    """Greedy completions of `prompts` (prompts_for the rows), graded: one row per problem (with `token_ids`, also
    the ids generated, which the KL to the base scores)."""
    outputs = journaled_generate(model, tokenizer, prompts, job, journal, token_ids=token_ids)
    return graded_rows(rows, outputs, job.prompt, lm_eval=graders_on(job.lm_eval_graders))


def graded_rows(rows: list[dict[str, Any]], outputs: list[dict[str, Any]], spec: PromptSpec,
                extras: list[dict[str, Any]] | None = None, lm_eval: bool = True) -> list[dict[str, Any]]:
    """Each completion graded by this project's graders and, with `lm_eval` (always under a protocol), by lm-eval's
    filters and metric (those of the spec's protocol, else of its gsm8k task): a second opinion set beside
    published numbers."""
    ours = grader(spec.task)
    theirs = (harness.grade([out["completion"] for out in outputs], rows, spec.protocol or GRADED_BY)
              if lm_eval or spec.protocol else [{}] * len(outputs))
    return [{"id": row["id"], "question": row["question"], "gold": row["answer"], "template": row.get("template"),
             **extra, **out, **ours(out["completion"], final_number(row["answer"]), spec.answer_format), **lm_eval}
            for row, out, extra, lm_eval in zip(rows, outputs, extras or [{}] * len(rows), theirs)]


def sample_rows(model, tokenizer, rows: list[dict[str, Any]], job: EvalJob, prompts: list[str],
                journal: Journal | None = None, scorer=None) -> list[dict[str, Any]]:
    """`samples` sampled completions per problem, graded and scored for best-of-n (by `scorer`, default the
    policy's own log-probability): one row per sample."""
    if not job.samples:
        return []
    n = job.samples
    repeated = [p for p in prompts for _ in range(n)]  # sample k of question q sits at q * n + k
    flat = journaled_generate(model, tokenizer, repeated, job, journal,
                              do_sample=True, temperature=job.sample_temperature)
    scorer = scorer or policy_scorer(model, tokenizer)
    scores = scorer(repeated, [out["completion"] for out in flat])
    return graded_rows([rows[i // n] for i in range(len(flat))], flat, job.prompt,
                       [{"sample": i % n, "score": score} for i, score in enumerate(scores)],
                       lm_eval=graders_on(job.lm_eval_graders))


def kl_to_reference(model, tokenizer, job: EvalJob, precision, reference: str | None, prompts: list[str],
                    completions: list[list[int]], base_samples: list[list[int]] | None = None) -> dict[str, Any]:
    """Against the base model (`reference`): KL(model || base) on the token ids of the model's greedy completions
    and, given the base's own samples, the forward KL(base || model) on them, which predicts forgetting (RL's
    Razor, arXiv 2509.04259); {} without a reference."""
    if not reference:
        return {}
    from ..generation.divergence import completion_kl, kl_summary
    from ..model_io import load_model_and_tokenizer

    base, _ = load_model_and_tokenizer(reference, job.dtype)
    base.to(model.device).eval()
    with autocast(precision):
        out = {"kl_to_base": kl_summary(completion_kl(model, base, tokenizer, prompts, completions), str(reference),
                                        "greedy completions")}
        if base_samples is not None:
            out["kl_from_base"] = kl_summary(completion_kl(base, model, tokenizer, prompts, base_samples),
                                             str(reference), "the base model's samples at temperature 1")
    return out


def reference_samples(model, tokenizer, rows: list[dict[str, Any]], job: EvalJob, prompts: list[str],
                      path: str, write: bool) -> list[list[int]]:
    """The base model's own completions, one per problem sampled at temperature 1: drawn and written (token ids)
    by the base model's evaluation, read by each trained model's, which scores KL(base || model) on them."""
    if write:
        outputs = journaled_generate(model, tokenizer, prompts, job, None, do_sample=True, temperature=1.0,
                                     token_ids=True, progress=False)
        write_jsonl(Path(path), [{"id": row["id"], "token_ids": out["token_ids"]} for row, out in zip(rows, outputs)])
        return [out["token_ids"] for out in outputs]
    by_id = {r["id"]: r["token_ids"] for r in map(json.loads, Path(path).read_text().splitlines())}
    missing = [row["id"] for row in rows if row["id"] not in by_id]
    if missing:
        raise DataError(f"{path}: no base sample for problem {missing[0]!r} (the base model's evaluation of this "
                        "test set writes them: evaluate it again)")
    return [by_id[row["id"]] for row in rows]


def sampling_summary(rows: list[dict[str, Any]], samples: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault(s["id"], []).append(s)
    return sample_metrics(groups, {r["id"]: final_number(r["answer"]) for r in rows})


def write_calibration_csv(path: Path, bins: list[dict[str, Any]]) -> None:
    """The reliability table (bin, count, mean confidence, accuracy); counts are 0 where nothing stated one."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(bins[0]))
        writer.writeheader()
        writer.writerows(bins)


EVAL_FLAGS = {"max_new_tokens": "--max-new-tokens", "batch_size": "--batch-size", "samples": "--samples",
              "sample_temperature": "--temperature", "reward_model": "--reward-model",
              "mixed_precision": "--mixed-precision", "engine": "--engine", "dtype": "--dtype", "prompt": "--protocol"}


def at_least_one(text: str) -> int:
    """An argparse type for counts: a number below 1 is named as the flag's, not taken as a slice."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def project_defaults(read: bool = True) -> dict[str, Any]:
    """The evaluation settings, the task and the first row's prompt of ./config.yaml when the command runs in the
    project (so an ad-hoc number is asked as the report's are), else the settings' own defaults; the help shows
    which. A DAG job (read=False: it passes --config) reads none of it: checking the task would import it.
    """
    from ..config_files import load_config_file

    own = {name: field.default for name, field in EvalJob.model_fields.items() if name != "prompt"}
    try:
        raw = load_config_file("config.yaml") if read and Path("config.yaml").is_file() else {}
    except (OSError, ValueError):  # a broken config.yaml is the DAG's to report, not this command's
        raw = {}
    from_config = {**(raw.get("evaluation") or {}), **(raw.get("generation") or {}),
                   **{k: v for k, v in (raw.get("model") or {}).items() if k in ("dtype", "mixed_precision")}}
    try:
        data = DataConfig.model_validate(raw.get("data") or {})
        row = next((r for r in (raw.get("experiments") or {}).values() if r is not None), None) or {}
        # a row's prompt keys are PromptSpec's, with the same defaults (tests/test_prompts_and_masking.py); read
        # here rather than through config.py, which every evaluation would then count as its code
        asked = {key: row[key] for key in PromptSpec.model_fields if key in row and key not in ("task", "protocol")}
        prompt = PromptSpec(task=data.source, **asked)
    except (ValueError, TypeError, AttributeError):  # as above: the DAG names what is wrong with it
        data, prompt = DataConfig(), PromptSpec()
    return {**own, **{k: v for k, v in from_config.items() if k in own}, "_from": "config.yaml" if raw else None,
            "_data": data, "_prompt": prompt}


def main(argv: list[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    default = project_defaults(read=not any(a == "--config" or a.startswith("--config=") for a in given))
    source = " (config.yaml's)" if default["_from"] else ""
    parser = argparse.ArgumentParser(description="Evaluate a model folder on a GSM-style test set.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (safetensors + tokenizer)")
    parser.add_argument("--data", help="test rows (JSONL); default: the first test set of config.yaml's task in the "
                                       "project, else 32 generated gsm_symbolic problems")
    parser.add_argument("--limit", type=at_least_one, help="the first N test rows only")
    parser.add_argument("--config", help="job settings as JSON (the DAG passes this)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS),
                        help="lm-evaluation-harness's prompt and stops instead of ours (grading/protocols.py)")
    parser.add_argument("--fewshot", help="the train split a protocol draws its worked examples from (JSONL; the "
                                          "DAG passes results/data/fewshot.jsonl); default: with the default test "
                                          "rows, their own")
    parser.add_argument("--answer-format", choices=list(FORMATS),
                        help=f"the format asked for (default: {default['_prompt'].answer_format}{source})")
    parser.add_argument("--raw", action="store_true", help="do not apply the chat template")
    parser.add_argument("--confidence", action="store_true", help="ask for a stated confidence after the answer")
    parser.add_argument("--max-new-tokens", type=int, default=default["max_new_tokens"],
                        help=f"generation budget per problem{source}")
    parser.add_argument("--batch-size", type=int, default=default["batch_size"],
                        help=f"problems generated together{source}")
    parser.add_argument("--samples", type=int, default=default["samples"],
                        help=f"sampled completions per problem (maj@n, best-of-n){source}")
    parser.add_argument("--temperature", type=float, default=default["sample_temperature"],
                        help=f"temperature of the samples{source}")
    parser.add_argument("--reward-model", help="reward model folder ranking samples for best-of-n")
    parser.add_argument("--meta", default="{}", help="labels stored in metrics.json (JSON)")
    parser.add_argument("--out", default="results/adhoc_eval", help="output folder")
    parser.add_argument("--dtype", default=default["dtype"], choices=get_args(EvalJob.model_fields["dtype"].annotation),
                        help=f"weights dtype{source}")
    parser.add_argument("--mixed-precision", default=default["mixed_precision"], choices=MIXED_PRECISION,
                        help=f"autocast for generation (auto: bf16 where the GPU or CPU has it natively){source}")
    parser.add_argument("--engine", default=default["engine"],
                        choices=get_args(EvalJob.model_fields["engine"].annotation),
                        help=f"generation engine (generation.engine in the config){source}")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--reference", help="the base model folder: also measure KL(model || base) on the greedy "
                                            "completions (the DAG passes it for every trained model)")
    parser.add_argument("--reference-samples", help="the base model's own samples (JSONL of token ids): with "
                        "--reference, also measure KL(base || model) on them; without, where the base model's "
                        "evaluation writes them")
    args = parser.parse_args(argv)
    changed = [flag for flag, given in (("--answer-format", args.answer_format), ("--raw", args.raw),
                                        ("--confidence", args.confidence)) if given]
    if args.protocol and changed:
        raise ConfigError(f"--protocol {args.protocol} sets the whole prompt: {', '.join(changed)} cannot change it")
    own, task = default["_prompt"], default["_data"].source
    prompt = PromptSpec.protocol_spec(task, args.protocol) if args.protocol else own.but(
        answer_format=args.answer_format or own.answer_format, chat_template=own.chat_template and not args.raw,
        confidence=args.confidence or own.confidence).model_dump()
    job = EvalJob.parse(args.config) if args.config else EvalJob.from_flags(
        EVAL_FLAGS, prompt=prompt, dtype=args.dtype, mixed_precision=args.mixed_precision,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, samples=args.samples,
        sample_temperature=args.temperature, reward_model=args.reward_model, engine=args.engine)
    seed_everything(job.seed, args.threads)
    check_model_dir(args.model)  # fail before any work
    if args.reference:
        check_model_dir(args.reference)
    if job.reward_model:
        check_model_dir(job.reward_model)
    rows = (load_test_rows(args.data) if args.data else default_test_rows(default["_data"]))[: args.limit]
    if not rows:
        raise DataError(f"{args.data}: no test rows")
    protocol, fewshot = job.prompt.protocol, None
    if protocol and args.fewshot:
        fewshot = load_test_rows(args.fewshot)
        if not fewshot:
            raise DataError(f"{args.fewshot}: no rows to draw worked examples from")
    elif protocol and not args.data:
        fewshot = default_fewshot_rows(default["_data"])
    if protocol and harness.shots(protocol) and not fewshot:
        raise DataError(f"{protocol} draws {harness.shots(protocol)} worked examples from a "
                        "train split: give it as --fewshot TRAIN.jsonl")
    model, tokenizer, precision, runtime = load_for_generation(args.model, job, args.threads)
    # a reward model that cannot be loaded fails now, not after every completion has been generated
    scorer = reward_model_scorer(job.reward_model) if job.samples and job.reward_model else None
    start = time.time()
    out = Path(args.out)
    stamp = journal_stamp(job, args.model, rows, runtime)
    journals = [Journal(out, name, stamp) for name in ("predictions", "samples")]
    prompts = prompts_for(rows, job.prompt, tokenizer, fewshot)
    with autocast(precision):
        reference = args.reference if job.kl_to_base else None
        graded = evaluate_rows(model, tokenizer, rows, job, prompts, journals[0], token_ids=bool(reference))
        samples = sample_rows(model, tokenizer, rows, job, prompts, journals[1], scorer)
        base_samples = reference_samples(model, tokenizer, rows, job, prompts, args.reference_samples,
                                         write=not args.reference) if args.reference_samples else None
    seconds = time.time() - start
    kl = kl_to_reference(model, tokenizer, job, precision, reference, prompts,
                         [row.pop("token_ids", []) for row in graded], base_samples)
    write_jsonl(out / "predictions.jsonl", graded)
    write_jsonl(out / "samples.jsonl", samples)
    metrics = {**json.loads(args.meta), "model": str(args.model), "data": str(args.data or f"{task} default"),
               "prompt": job.prompt.model_dump(), "max_new_tokens": job.max_new_tokens, "decoding": "greedy",
               "seed": job.seed, "generation_seconds": round(seconds, 1), "runtime": runtime,
               "lm_eval": ({"graders_of": job.prompt.protocol or GRADED_BY, "version": lm_eval_version()}
                           if graders_on(job.lm_eval_graders) or job.prompt.protocol else None),
               **summarize(graded)}
    stated = calibration(graded)
    write_calibration_csv(out / "calibration.csv", stated.pop("bins"))
    metrics["calibration"] = stated
    metrics.update(kl)
    if samples:
        metrics["sampling"] = {"samples": job.samples, "temperature": job.sample_temperature,
                               "scorer": job.reward_model or "policy mean token log-probability",
                               **sampling_summary(rows, samples)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for journal in journals:
        journal.remove()
    print(f"strict {metrics['accuracy_strict']:.3f}  flexible {metrics['accuracy_flexible']:.3f}  "
          f"answer rate {metrics['answer_rate']:.3f}  n={metrics['n']}  ({seconds:.0f}s)")


if __name__ == "__main__":
    run_main(main)
