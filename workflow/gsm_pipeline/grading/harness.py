"""lm-evaluation-harness's GSM8K protocol (protocols.py), run through lm-eval's own code, so that a number here can be
set beside a published one. lm-eval's own code does the work: its `ConfigurableTask`, built from the task's YAML on our
rows, renders the prompts (its few-shot sampler at its default seed), and the task's filters and `exact_match`
metric grade any completion. Nothing of the task is copied here: a release that changes the task changes these
numbers, and each evaluation records lm-eval's version.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .protocols import FILTERS, GRADED_BY, stop_strings, task_config


def document(row: dict[str, Any]) -> dict[str, str]:
    """A row as lm-eval's GSM8K document: the question and the task's own worked solution (`solution`, ending in
    '#### N'), or '#### N' where the row has only its final number."""
    solution = str(row.get("solution") or row["answer"])
    return {"question": row.get("question", ""), "answer": solution if "####" in solution else f"#### {solution}"}


@contextmanager
def _quiet():
    """lm-eval warns at every task it builds from a custom data set; the warning is about its CLI, not us."""
    logger = logging.getLogger("lm_eval")
    level, logger.level = logger.level, logging.ERROR
    try:
        yield
    finally:
        logger.setLevel(level)


def build_task(protocol: str, rows: list[dict[str, Any]], fewshot_rows: list[dict[str, Any]]):
    """lm-eval's task on our rows (its test split) and few-shot pool (its few-shot split, in source order), its
    sampler seeded as `lm_eval` seeds it by default."""
    import datasets
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.defaults import DEFAULT_OTHER_SEED

    config = task_config(protocol)
    splits = {config["test_split"]: datasets.Dataset.from_list([document(r) for r in rows]),
              config["fewshot_split"]: datasets.Dataset.from_list([document(r) for r in fewshot_rows or rows])}
    with _quiet():
        task = ConfigurableTask(config={**config, "custom_dataset": lambda **_: splits})
    task.set_fewshot_seed(DEFAULT_OTHER_SEED)
    return task


def task_from_files(protocol: str, test_file: str, fewshot_file: str):
    """lm-eval's task as lm-eval itself loads it, over GSM8K-format JSONL files (question, answer '... #### N'): its
    own YAML loader, its dataset loading and its document fields, so nothing of this project's row mapping
    (`document`) is in it. The independent side of `gsm-pipeline lm-eval`."""
    from importlib import resources

    from lm_eval.api.task import ConfigurableTask
    from lm_eval.defaults import DEFAULT_OTHER_SEED
    from lm_eval.tasks._yaml_loader import load_yaml

    from .protocols import PROTOCOLS

    config = load_yaml(resources.files("lm_eval") / "tasks" / PROTOCOLS[protocol].task_file)
    files = {config["test_split"]: str(test_file), config["fewshot_split"]: str(fewshot_file)}
    with _quiet():
        task = ConfigurableTask(config={**config, "dataset_path": "json", "dataset_name": None,
                                        "dataset_kwargs": {"data_files": files}})
    task.set_fewshot_seed(DEFAULT_OTHER_SEED)
    return task


def shots(protocol: str) -> int:
    return task_config(protocol).get("num_fewshot") or 0


def contexts(protocol: str, rows: list[dict[str, Any]], fewshot_rows: list[dict[str, Any]]) -> list[str]:
    """The prompt of every row, in order, as lm-eval builds them: each test document draws its own few-shot
    examples from one seeded generator, so a row's prompt depends on its place in the test set (as there)."""
    if shots(protocol) and not fewshot_rows:
        raise ValueError(f"{protocol}: draws {shots(protocol)} worked examples from a train split; none was given")
    task = build_task(protocol, rows, fewshot_rows)
    with _quiet():
        task.build_all_requests(limit=None, rank=0, world_size=1)
    by_doc = {inst.doc_id: inst.args[0] for inst in task.instances}
    return [by_doc[i] for i in range(len(rows))]


@lru_cache(maxsize=None)
def _graders(protocol: str):
    """The task (on a placeholder document: grading reads no split) and its filter ensembles."""
    from lm_eval.filters import build_filter_ensemble

    placeholder = [{"question": "", "answer": "#### 0"}]
    task = build_task(protocol, placeholder, placeholder)
    ensembles = [build_filter_ensemble(f["name"], [(step["function"], {k: v for k, v in step.items()
                                                                        if k != "function"}) for step in f["filter"]])
                 for f in task_config(protocol)["filter_list"]]
    return task, ensembles


def grade(completions: list[str], rows: list[dict[str, Any]], protocol: str = GRADED_BY) -> list[dict[str, Any]]:
    """lm-eval's verdicts on each completion: the text its Hugging Face backend would have returned (cut at the
    task's stop sequences), each filter's extraction, and that filter's exact match against the task's target."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.utils import postprocess_generated_text

    task, ensembles = _graders(protocol)
    until = stop_strings(protocol)
    instances = []
    for completion, row in zip(completions, rows):
        instance = Instance("generate_until", document(row), ("", {}), 0)
        instance.resps = [postprocess_generated_text(completion or "", until, None)]
        instances.append(instance)
    for ensemble in ensembles:
        ensemble.apply(instances)
    out = []
    for instance in instances:
        fields: dict[str, Any] = {}
        for name, ours in FILTERS.items():
            extracted = instance.filtered_resps[name]
            score = task.process_results(instance.doc, [extracted])["exact_match"]
            fields[f"extracted_{ours}"] = extracted
            fields[f"correct_{ours}"] = bool(score)
        out.append(fields)
    return out
