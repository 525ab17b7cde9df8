"""An independent run: lm-evaluation-harness itself (its Hugging Face backend, offline, on a local model folder) on a
protocol's task, beside this project's own evaluation of the same model under the same protocol.

    gsm-pipeline lm-eval --model resources/model --data gsm8k/test.jsonl --fewshot gsm8k/train.jsonl \
        --limit 50 --out results/lm_eval/base

Given GSM8K-format files (question, answer '... #### N'), lm-eval loads them itself while this project reads them
through its own data preparation, so the prompts check this project's mapping of rows to lm-eval's documents too;
given prepared rows (results/data/...), both sides share that mapping. Both runs see the same documents (the first
`limit` test rows) and worked examples, decode greedily with the same token budget and dtype; lm_eval.json records
both scores per grader, and every document where the prompts, the responses or the verdicts differ;
predictions.jsonl holds our graded rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, get_args

from ..data import load_test_rows
from ..errors import DataError, run_main
from ..grading import harness
from ..grading.metrics import summarize
from ..grading.protocols import FILTERS, PROTOCOLS, stop_strings, version
from ..model_io import check_model_dir
from ..rows import write_jsonl
from ..runtime import autocast, load_for_generation, seed_everything
from ..settings.evaluation import EvalJob
from ..settings.prompt import PromptSpec
from ..tasks import DEFAULT_TASK
from .evaluate import EVAL_FLAGS, at_least_one, evaluate_rows, prompts_for


def run_lm_eval(model_dir: str, task, job: EvalJob, device: str, limit: int) -> list[dict[str, Any]]:
    """lm-eval's own run on its first `limit` documents, per document in order: its context, its response, and each
    filter's verdict (in FILTERS' order). Greedy as the task says, with our token budget in place of lm-eval's
    default of 256."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_dir, dtype=job.dtype, device=device, batch_size=job.batch_size)
    out = simple_evaluate(model=lm, tasks=[task], log_samples=True, bootstrap_iters=0, limit=limit,
                          gen_kwargs={"max_gen_toks": job.max_new_tokens})
    docs: dict[int, dict[str, Any]] = {}
    for sample in out["samples"][task.config.task]:  # one per document and filter
        doc = docs.setdefault(sample["doc_id"], {"context": sample["arguments"][0][0],
                                                 "response": sample["resps"][0][0], "verdicts": {}})
        doc["verdicts"][sample["filter"]] = bool(sample["exact_match"])
    return [{**docs[i], "verdicts": [docs[i]["verdicts"][name] for name in FILTERS]} for i in sorted(docs)]


def is_raw(path: str) -> bool:
    """A GSM8K-format file (question, answer '... #### N'), not rows this project prepared (which carry ids)."""
    from ..rows import read_jsonl

    return not any("id" in row for _, row in read_jsonl(path))


def main(argv: list[str] | None = None) -> None:
    from lm_eval.models.utils import postprocess_generated_text

    parser = argparse.ArgumentParser(description="Run lm-evaluation-harness on a model folder beside this project's "
                                                 "evaluation under the same protocol.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (safetensors + tokenizer)")
    parser.add_argument("--data", required=True, help="test rows (JSONL: prepared rows or GSM8K question/answer)")
    parser.add_argument("--fewshot", required=True, help="the train split worked examples are drawn from (JSONL)")
    parser.add_argument("--protocol", default="lm-eval-gsm8k", choices=list(PROTOCOLS))
    parser.add_argument("--limit", type=at_least_one, default=None, help="the first N test rows (lm-eval's --limit)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="both runs' budget (lm-eval's max_gen_toks "
                                                                        "default is 256)")
    parser.add_argument("--batch-size", type=int, default=1, help="both runs' batch size (lm-eval's default 1)")
    parser.add_argument("--dtype", default="float32", choices=get_args(EvalJob.model_fields["dtype"].annotation))
    parser.add_argument("--engine", default="loop", choices=get_args(EvalJob.model_fields["engine"].annotation))
    parser.add_argument("--out", required=True, help="output folder (lm_eval.json, predictions.jsonl)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    job = EvalJob.from_flags(EVAL_FLAGS, prompt=PromptSpec.protocol_spec(DEFAULT_TASK, args.protocol),
                             max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, dtype=args.dtype,
                             mixed_precision="no", engine=args.engine)
    check_model_dir(args.model)
    rows = load_test_rows(args.data)[: args.limit]
    fewshot = load_test_rows(args.fewshot)
    if not rows:
        raise DataError(f"{args.data}: no test rows")
    if harness.shots(args.protocol) and not fewshot:
        raise DataError(f"{args.fewshot}: no rows to draw worked examples from")
    seed_everything(job.seed, args.threads)
    model, tokenizer, precision, runtime = load_for_generation(args.model, job, args.threads)
    prompts = prompts_for(rows, job.prompt, tokenizer, fewshot)
    with autocast(precision):
        ours = evaluate_rows(model, tokenizer, rows, job, prompts)
    del model
    # GSM8K-format files: lm-eval loads them itself, so its documents check our mapping of rows to documents
    independent = is_raw(args.data) and is_raw(args.fewshot)
    task = (harness.task_from_files(args.protocol, args.data, args.fewshot) if independent
            else harness.build_task(args.protocol, rows, fewshot))
    theirs = run_lm_eval(args.model, task, job, runtime["device"], len(rows))
    until = stop_strings(args.protocol)
    differences = []
    for i, (row, mine, prompt, their) in enumerate(zip(rows, ours, prompts, theirs)):
        why = [what for what, same in (
            ("prompt", prompt == their["context"]),
            ("response", postprocess_generated_text(mine["completion"], until, None) == their["response"]),
            ("verdicts", [mine[f"correct_{kind}"] for kind in FILTERS.values()] == their["verdicts"]))
            if not same]
        if why:
            differences.append({"doc": i, "id": row["id"], "differs": why, "ours": mine["completion"],
                                "lm_eval": their["response"]})
    theirs_summary = {name: sum(t["verdicts"][k] for t in theirs) / len(theirs) for k, name in enumerate(FILTERS)}
    mine_summary = summarize(ours)
    record = {"protocol": args.protocol, "lm_eval_version": version(), "model": args.model, "data": args.data,
              "documents": ("loaded by lm-eval from the files" if independent else
                            "this project's prepared rows, mapped by this project (give GSM8K-format files for a "
                            "check of that mapping)"),
              "limit": len(rows), "max_new_tokens": job.max_new_tokens, "dtype": job.dtype, "runtime": runtime,
              "lm_eval": theirs_summary,
              "ours": {name: mine_summary[f"accuracy_{ours}"] for name, ours in FILTERS.items()},
              "ours_own_graders": {k: mine_summary[f"accuracy_{k}"] for k in ("strict", "flexible")},
              "documents_differing": len(differences), "differences": differences}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lm_eval.json").write_text(json.dumps(record, indent=2))
    write_jsonl(out / "predictions.jsonl", ours)
    print("  ".join(f"{name}: lm-eval {theirs_summary[name]:.3f} ours {record['ours'][name]:.3f}"
                    for name in FILTERS) + f"  n={len(rows)}  documents differing: {len(differences)}")


if __name__ == "__main__":
    run_main(main)
