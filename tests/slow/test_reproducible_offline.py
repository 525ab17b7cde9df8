"""Two full tiny-model DAG runs from empty results/ with the same config and seed (training and
sampling included) give byte-identical per-example evaluation files; the second runs inside a
network namespace with no network at all, so nothing in the DAG reaches out once the model exists."""
import shutil
import subprocess

import pytest

from conftest import Dag, tiny_config

pytestmark = pytest.mark.slow


def evaluation_files(dag: Dag) -> dict[str, bytes]:
    root = dag.root / "results"
    files = sorted(root.glob("**/eval/*/*/*.jsonl"))
    return {str(f.relative_to(root)): f.read_bytes() for f in files}


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_same_seed_same_bytes_and_no_network_needed(tmp_path, tiny_model, tiny_data):
    if subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n needs root (CI runs as root)")
    first = Dag(tmp_path / "first", tiny_config(tiny_model, tiny_data))
    first.snakemake()
    second = Dag(tmp_path / "second", tiny_config(tiny_model, tiny_data))
    second.snakemake(prefix=("unshare", "-n"))
    a, b = evaluation_files(first), evaluation_files(second)
    assert len(a) == 8 * 2 and a.keys() == b.keys()  # predictions + samples of 2 base prompts, 6 stages
    different = [name for name in a if a[name] != b[name]]
    assert different == []
    assert "seed" in (second.root / "results/report/index.html").read_text()
