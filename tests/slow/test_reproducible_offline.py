"""A second run of the tiny DAG's plain row from empty results/ with the same config and seed (training and sampling
included) gives byte-identical per-example evaluation files to the session's run of the whole DAG; it runs inside a
network namespace with no network at all, so nothing in the DAG reaches out once the model exists."""
import shutil
import subprocess

import pytest

from conftest import Dag, tiny_config
from gsm_pipeline.layout import eval_dir

pytestmark = pytest.mark.slow


def evaluation_files(dag: Dag) -> dict[str, bytes]:
    root = dag.root / "results"
    files = sorted(root.glob("**/eval/*/*/*.jsonl"))
    return {str(f.relative_to(root)): f.read_bytes() for f in files}


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_same_seed_same_bytes_and_no_network_needed(tmp_path, tiny_model, tiny_data, tiny_dag):
    if subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n needs root (CI runs as root)")
    second = Dag(tmp_path / "second", tiny_config(tiny_model, tiny_data, chat_matrix=True))
    prompt = second.config().prompt_key("tagged")
    runs = ["base", *(second.run("tagged", stage) for stage in ("prep_sft", "full_sft", "rl"))]
    second.snakemake(*(f"{eval_dir(run, prompt, 'test')}/metrics.json" for run in runs), prefix=("unshare", "-n"))
    again, first = evaluation_files(second), evaluation_files(tiny_dag)
    # predictions and samples of the base model and the row's three stages, and the base's own samples that the
    # stages' KL(base || model) is scored on
    assert len(again) == 4 * 2 + 1
    assert [name for name in again if again[name] != first[name]] == []
