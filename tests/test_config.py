"""Config: one pydantic model validates every key before any job runs, in one line."""
import json
import subprocess

import pytest
import yaml

from conftest import REPO
from gsm_pipeline.config import PipelineConfig, validate_config
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.validate import load_yaml, schema_json

PRESETS = sorted((REPO / "workflow" / "presets").glob("*.yaml"))


def default_config() -> dict:
    return load_yaml(REPO / "config.yaml")


def test_default_config_is_valid_and_spells_out_every_default_section():
    cfg = validate_config(default_config())
    assert set(default_config()) == set(PipelineConfig.model_fields)
    assert cfg.data.test_sets() == ["symbolic_id", "symbolic_heldout"]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_validate_as_overlays_of_the_default(preset):
    from gsm_pipeline.validate import _merge

    validate_config(_merge(default_config(), load_yaml(preset)))


@pytest.mark.parametrize("patch, message", [
    ({"stages": {"grpo": {"temprature": 0.7}}}, "unknown key 'stages.grpo.temprature'"),
    ({"data": {"test_size": 0}}, "key 'data.test_size': Input should be greater than or equal to 1 (got 0)"),
    ({"data": {"source": "mnist"}}, "key 'data.source'"),
    ({"experiments": {"a": {"finetune": "qlora"}}}, "key 'experiments.a.finetune'"),
    ({"experiments": {"base": {}}}, "experiment name 'base'"),
    ({"experiments": {"a": {"stages": ["grpo"]}}}, "grpo needs prep_sft"),
    ({"data": {"source": "jsonl"}}, "needs data.train_file and data.test_file"),
])
def test_bad_values_fail_in_one_line_naming_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        validate_config(patch)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_schema_file_is_generated_from_the_model():
    current = (REPO / "workflow" / "schemas" / "config.schema.json").read_text()
    assert current == schema_json(), "run: gsm-pipeline validate --schema workflow/schemas/config.schema.json"
    assert "description" in json.loads(current)["$defs"]["GRPOStageConfig"]["properties"]["beta"]


def test_snakemake_dry_run_refuses_a_bad_key_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"stages": {"grpo": {"temprature": 0.7}}}))
    done = subprocess.run(["snakemake", "-n", "--configfile", str(bad)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "temprature" in line]
    assert errors == ["config error: unknown key 'stages.grpo.temprature'"]


def test_jobs_receive_only_the_settings_they_read():
    cfg = validate_config({})
    changed = validate_config({"experiments": {"tagged": {"rewards": ["binary"]}}})
    assert cfg.sft_job("tagged", "prep_sft") == changed.sft_job("tagged", "prep_sft")
    assert cfg.grpo_job("tagged") != changed.grpo_job("tagged")
    assert cfg.eval_job(cfg.prompt_spec("tagged")) == changed.eval_job(changed.prompt_spec("tagged"))
