"""The opt-in GPU benchmarks stay runnable: each completes its CPU smoke mode and prints its table."""
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script, table", [("bench_training.py", "completions_per_s"),
                                           ("bench_generation.py", "speedup_vs_plain")])
def test_benchmark_smoke_run_completes(tmp_path, script, table):
    done = subprocess.run([sys.executable, str(REPO / "tests/bench" / script), "--smoke"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert table in done.stdout
