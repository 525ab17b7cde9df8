# Config validation and input functions; no rules live here.
import json
import os
import re
import shlex
import sys
from pathlib import Path

# The Snakefile and every job run this checkout's package, installed or not (jobs inherit the environment).
PACKAGE_ROOT = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))

from gsm_pipeline.config import PARENT_STAGE, STAGES, config_hash, validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.sources import module_sources

try:
    CFG = validate_config(config)
except ConfigError as exc:
    raise SystemExit(f"config error: {exc}")

EXPERIMENTS = list(CFG.experiments)
TESTSETS = CFG.data.test_sets()
PROMPTS = CFG.prompts()
BASE_MODEL = "resources/model"


def one_of(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    testset=one_of(TESTSETS),
    run=f"base/({one_of(PROMPTS)})|({one_of(EXPERIMENTS)})/({one_of(STAGES)})",


def as_arg(obj):
    """A params value Snakemake can compare between runs, quoted for the shell."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def code(module):
    """The entry module and every package module it imports: code edits replan the stage."""
    return module_sources(module)


def local_data_files():
    """User data files are inputs of prepare_data, so editing one reruns it (and what depends on it)."""
    d = CFG.data
    files = list(d.extra_test_files.values())
    if d.source == "jsonl":
        files += [d.train_file, d.test_file]
    elif d.source == "gsm8k" and d.gsm8k_path:
        suffix = "" if d.gsm8k_config == "main" else "_socratic"
        files += [f"{d.gsm8k_path}/{split}{suffix}.jsonl" for split in ("train", "test")]
    return files


def model_dir(experiment, stage):
    return BASE_MODEL if stage == "base" else f"results/{experiment}/{stage}/model"


def base_run(experiment):
    return f"base/{CFG.experiments[experiment].prompt_key()}"


def parent_stage(experiment, stage):
    return CFG.experiments[experiment].grpo_from if stage == "grpo" else PARENT_STAGE[stage]


def eval_runs():
    """Every evaluated model: base once per prompt, then each experiment's stages."""
    runs = {base_run(e) for e in EXPERIMENTS}
    runs |= {f"{e}/{s}" for e in EXPERIMENTS for s in CFG.experiments[e].stages}
    return sorted(runs)


def eval_outputs(name="metrics.json"):
    return expand("results/{run}/eval/{testset}/{name}", run=eval_runs(), testset=TESTSETS, name=name)


def training_logs():
    return [f"results/{e}/{s}/log_history.json" for e in EXPERIMENTS for s in CFG.experiments[e].stages]


def eval_inputs(wildcards):
    head, stage = wildcards.run.split("/")
    model = BASE_MODEL if head == "base" else model_dir(head, stage)
    return {"model": model, "data": f"results/data/test/{wildcards.testset}.jsonl", "code": code("evaluate")}


def eval_params(wildcards):
    head, tail = wildcards.run.split("/")
    if head == "base":
        return {"prompt": PROMPTS[tail], "meta": {"experiment": "base", "stage": "base", "prompt_key": tail}}
    return {"prompt": CFG.prompt_spec(head),
            "meta": {"experiment": head, "stage": tail, "prompt_key": CFG.experiments[head].prompt_key()}}


def report_layout():
    return {e: {"base_run": base_run(e), "stages": list(CFG.experiments[e].stages), "testsets": TESTSETS,
                "parents": {s: parent_stage(e, s) for s in CFG.experiments[e].stages}} for e in EXPERIMENTS}
