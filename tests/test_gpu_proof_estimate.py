"""The GPU proof's parts fit the allowances they run under on a lent GPU, by the same estimate `gsm-pipeline cost`
makes for a config (tests/gpu/estimate.py): a part past its allowance is stopped unfinished, and a lent GPU gives
about 15 minutes in all, so each part must fit even at the slow end of the throughput table."""
import sys
from collections import Counter

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tests/gpu"))

import estimate  # noqa: E402
import prove  # noqa: E402

from gsm_pipeline.layout import model_dir  # noqa: E402


@pytest.fixture(scope="module")
def proof_dag(tmp_path_factory):
    return prove.new_dag(tmp_path_factory.mktemp("proof"), gpu=True)


def test_every_part_fits_its_allowance_at_the_slow_end_of_its_estimate(tmp_path):
    parts = estimate.estimates(tmp_path)
    assert list(parts) == list(prove.PARTS)
    over = {name: f"{span.slow:.0f} s > {prove.ALLOWANCE[name]} s" for name, span in parts.items()
            if span.slow > prove.ALLOWANCE[name]}
    assert not over, over
    assert all(0 < span.fast < span.slow for span in parts.values())
    # the second call (--skip smoke) stays under the 6 minutes its docs promise, whatever its parts take
    assert sum(prove.ALLOWANCE[name] for name in prove.PARTS if name != "smoke") <= 360


def test_the_dag_part_is_priced_job_by_job_as_the_dry_run_plans_it_on_the_proofs_job_slots(proof_dag):
    done = proof_dag.snakemake("-n", "--quiet", "rules")
    planned = {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()
               if len(line.split()) == 2 and line.split()[1].isdigit()}
    costs = estimate.proof_costs(proof_dag)
    priced = Counter(c.kind for c in costs)
    # every job the dry-run plans on the GPU is priced, evaluations included; the rest run on the CPU side
    assert priced == {rule: n for rule, n in planned.items() if rule not in ("fetch_model", "prepare_data",
                                                                               "report", "all", "total")}
    assert all(c.gpus == 1 and c.seconds.slow > 0 for c in costs)
    side = estimate.CPU_SIDE["snakemake"].slow + 2 * estimate.CPU_SIDE["cpu_job"].slow
    eight = estimate.dag_s(costs, 1, report=True)
    assert eight == pytest.approx(side + estimate.schedule(costs, 1, slots=8)[0])
    assert eight < side + estimate.schedule(costs, 1, slots=1)[0]  # 8 jobs at a time, not one


def test_the_smoke_part_is_priced_as_the_one_stage_it_trains(proof_dag):
    costs = estimate.proof_costs(proof_dag, [model_dir(proof_dag.config(), "tagged", "prep_sft")])
    assert [(c.kind, c.gpus) for c in costs] == [("prep_sft", 1)]
