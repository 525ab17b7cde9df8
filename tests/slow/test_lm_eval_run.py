"""lm-evaluation-harness run by itself (its Hugging Face backend, offline, loading the source files itself) on the
tiny DAG's models equals this project's evaluation under lm-eval's gsm8k protocol: the same prompts, the same greedy
responses, the same verdicts and scores (fp32, the same token budget)."""
import json
import subprocess

import pytest
import yaml

pytestmark = pytest.mark.slow


def lm_eval_run(data, model, out, *extra: str) -> dict:
    """The command on the DAG's source files (GSM8K-format), which lm-eval loads itself."""
    done = subprocess.run(["gsm-pipeline", "lm-eval", "--model", str(model), "--data", str(data / "test.jsonl"),
                           "--fewshot", str(data / "train.jsonl"), "--max-new-tokens", "40", "--out", str(out),
                           *extra], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "lm_eval.json").read_text())
    assert record["documents"] == "loaded by lm-eval from the files"
    return record


def test_the_dags_base_evaluation_under_the_protocol_is_lm_evals_own_on_the_same_model(tiny_dag, tiny_data,
                                                                                        tmp_path):
    dag = tiny_dag.copy(tmp_path / "dag")  # a job runs: in a copy, as other workers read the shared DAG meanwhile
    overlay = yaml.safe_load((dag.root / "tiny.yaml").read_text())
    overlay.setdefault("experiments", {}).setdefault("tagged", {})["eval_protocols"] = ["lm-eval-gsm8k"]
    dag.write_config(overlay, name="protocol.yaml")
    target = "results/base/eval/lm-eval-gsm8k/test/predictions.jsonl"
    dag.snakemake(target, configfile="protocol.yaml")
    ours = [json.loads(line) for line in (dag.root / target).read_text().splitlines()]
    metrics = json.loads((dag.root / target).with_name("metrics.json").read_text())

    record = lm_eval_run(tiny_data, dag.root / "resources/model", tmp_path / "base", "--batch-size", "8")
    assert record["documents_differing"] == 0, record["differences"]
    assert record["limit"] == len(ours) == metrics["n"]
    theirs = [json.loads(line) for line in (tmp_path / "base/predictions.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in theirs] == [r["completion"] for r in ours]  # the DAG's job, the command's run
    assert record["lm_eval"] == {"strict-match": metrics["accuracy_lmeval_strict"],
                                 "flexible-extract": metrics["accuracy_lmeval_flexible"]}


def test_on_a_trained_model_that_writes_numbers_both_runs_agree_document_by_document(tiny_dag, tiny_data,
                                                                                     tmp_path):
    model = tiny_dag.root / "results" / tiny_dag.run("tagged", "prep_sft") / "model"
    record = lm_eval_run(tiny_data, model, tmp_path / "prep", "--limit", "6")
    assert record["documents_differing"] == 0, record["differences"]
    assert record["limit"] == 6 and record["lm_eval"] == record["ours"]
    completions = [json.loads(line)["completion"] for line in (tmp_path / "prep/predictions.jsonl").open()]
    assert any(any(c.isdigit() for c in text) for text in completions), completions  # not a vacuous agreement
