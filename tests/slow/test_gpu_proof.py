"""The GPU proof (tests/gpu/) stays runnable without a GPU: its CPU mode passes, and the wheelhouse for an offline
GPU node resolves, holds only what that node lacks, and fits the 64 MiB a call may carry."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_the_gpu_proof_passes_in_cpu_mode_as_the_two_calls_a_lent_gpu_gets(tmp_path):
    """The smoke call, then the rest into the same OUT, as on a GPU: every launcher's chain trains and saves a
    loadable model that moved, under the distributed mode it names; the report is built; both benchmarks
    complete their smoke runs; each part's seconds are recorded; OUT holds at most the four files a call
    may bring back (a call returns at most 8), with the working files elsewhere."""
    out = tmp_path / "proof"
    env = {**os.environ, "GPU_CARRY": str(tmp_path / "none")}
    for part in (["--only", "smoke"], ["--skip", "smoke"]):
        done = subprocess.run(["bash", str(REPO / "tests/gpu/prove.sh"), str(out), "--cpu", "--work",
                               str(tmp_path / "work"), *part], capture_output=True, text=True, timeout=1500, env=env)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
        assert "PROOF PASSED" in done.stdout
    assert sorted(f.name for f in out.iterdir()) == ["bench_generation.json", "bench_training.json", "prove.json",
                                                     "prove.log"]
    result = json.loads((out / "prove.json").read_text())
    assert list(result["parts"]) == ["smoke", "dag", "training", "generation"]
    assert all(part["passed"] and part["seconds"] > 0 for part in result["parts"].values())
    smoke, = result["parts"]["smoke"]["stages"]
    assert (smoke["stage"], smoke["launcher"]) == ("prep_sft", "single") and all(smoke["checks"].values())
    stages = {(s["experiment"], s["stage"]): s for s in result["parts"]["dag"]["stages"]}
    assert {s["launcher"] for s in stages.values()} == {"single", "zero2", "zero3"}
    assert all(all(s["checks"].values()) for s in stages.values())
    assert stages[("zero3", "rl")]["distributed"] == "DEEPSPEED"
    assert stages[("tagged", "full_sft")]["distributed"] != "DEEPSPEED"
    assert {json.loads((out / f).read_text())["device"] for f in ("bench_training.json", "bench_generation.json")} \
        == {"cpu"}
    generation = json.loads((out / "bench_generation.json").read_text())
    timed = [r for r in generation["runs"].values() if r["decoding"] != "grpo rollouts"]
    # tokens/s counts the tokens generated: the tiny random model's sampled completions reach EOS and stop there
    assert all(r["tokens"] <= r["completions"] * generation["max_new_tokens"] for r in timed)
    assert any(r["tokens"] < r["completions"] * generation["max_new_tokens"] for r in timed if r["engine"] == "loop")
    log = (out / "prove.log").read_text()
    assert log.count("PROOF PASSED") == 2  # the second call appends to the first call's log


def test_the_wheelhouse_holds_only_what_the_offline_node_lacks_within_the_carry_budget(tmp_path, tiny_model):
    out = tmp_path / "carry"
    done = subprocess.run([sys.executable, str(REPO / "tests/gpu/wheelhouse.py"), "--out", str(out),
                           "--tokenizer", str(tiny_model)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = {w.name.split("-")[0].lower(): w for w in (out / "wheels").glob("*.whl")}
    assert {"trl", "datasets", "pydantic", "snakemake", "deepspeed", "reasoning_gym", "gguf", "math_verify",
            "gsm_pipeline"} <= wheels.keys()
    # the node has these: carrying them would waste the budget or clash with its CUDA build
    assert not {"torch", "transformers", "accelerate", "numpy", "triton", "peft", "pandas"} & wheels.keys()
    assert not [n for n in wheels if n.startswith("nvidia")]
    assert wheels["deepspeed"].name.endswith("-py3-none-any.whl")  # no compiled ops: they JIT-build on the node
    for wheel in wheels.values():  # every wheel installs on CPython 3.12 x86-64
        tag = wheel.name.rsplit("-", 3)[1:]
        assert tag[0] in ("py3", "py2.py3", "cp312", "py312") and (tag[2] == "any.whl" or "x86_64" in tag[2]), wheel
    with zipfile.ZipFile(wheels["gsm_pipeline"]) as whl:  # the project wheel has its report template
        assert any(n.endswith("report.html.j2") for n in whl.namelist())
    assert (out / "tokenizer/tokenizer.json").exists()
    assert "of 64 MiB" in done.stdout
    # the budget itself, summed here: the carried folder and the checkout that travels with it
    carried = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    checkout = sum((REPO / name.decode()).stat().st_size for name in tracked if name)
    assert carried + checkout <= 64 * 2**20, f"{(carried + checkout) / 2**20:.1f} MiB"
