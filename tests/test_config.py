"""Config: one pydantic model validates every key before any job runs, in one line."""
import json
import subprocess

import pytest
import yaml

from conftest import REPO, dry_run_refusal
from gsm_pipeline.config import PipelineConfig, validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.preflight import preflight
from gsm_pipeline.validate import schema_json

PRESETS = sorted((REPO / "workflow" / "presets").glob("*.yaml"))


def default_config() -> dict:
    return load_config_file(REPO / "config.yaml")


def test_default_config_is_valid_and_spells_out_every_default_section():
    cfg = validate_config(default_config())
    assert set(default_config()) == set(PipelineConfig.model_fields)
    assert cfg.data.test_sets() == ["rg_id", "rg_harder", "rg_sub", "rg_mul"]  # the last two: the battery


def test_a_preset_removes_a_row_it_would_inherit_by_naming_it_without_settings():
    """The GSM presets drop the default's arithmetic rows and keep only their own."""
    cfg = validate_config(merge(default_config(), {"experiments": {"arith": None, "mine": {"stages": []}}}))
    assert list(cfg.experiments) == ["arith_random", "mine"]
    gsm = validate_config(merge(default_config(), load_config_file(REPO / "workflow/presets/gsm-symbolic-cpu.yaml")))
    assert list(gsm.experiments) == ["tagged", "tagged_conf"] and gsm.data.source == "gsm_symbolic"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_validate_as_overlays_of_the_default(preset):
    preflight(validate_config(merge(default_config(), load_config_file(preset))))  # as the dry-run checks them


SET_BY_SWEEPS = {"variant_of", "swept"}  # row keys sweep expansion writes; a config never sets them


def missing_keys(model, data: dict, path: str = "") -> list[str]:
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        if name not in data:
            out.append(here)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += missing_keys(field.annotation, data[name], here)
    return out


def test_config_yaml_spells_out_every_key_of_the_config_model():
    """README promises config.yaml shows every key; its first experiment row shows every row key."""
    from gsm_pipeline.config import ExperimentConfig

    raw = default_config()
    first = next(iter(raw["experiments"]))
    missing = missing_keys(PipelineConfig, raw) + [
        key for key in missing_keys(ExperimentConfig, raw["experiments"][first], f"experiments.{first}")
        if key.rsplit(".", 1)[1] not in SET_BY_SWEEPS]
    assert missing == []


def test_the_rules_conda_env_lists_every_runtime_dependency_pyproject_declares():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["lm-eval"]
    env = yaml.safe_load((REPO / "envs/pipeline.yaml").read_text())["dependencies"]
    pip = next(item["pip"] for item in env if isinstance(item, dict))
    runtime = [spec.split("#")[0].strip() for spec in declared if not spec.startswith("snakemake")]
    assert sorted(pip) == sorted(runtime)
    assert any(spec.startswith("jinja2") for spec in runtime) and any(spec.startswith("scipy") for spec in runtime)


@pytest.mark.parametrize("patch, message", [
    ({"stages": {"rl": {"temprature": 0.7}}}, "unknown key 'stages.rl.temprature'; did you mean 'temperature'?"),
    ({"experiments": {"a": {"answer_fromat": "gsm8k"}}},
     "unknown key 'experiments.a.answer_fromat'; did you mean 'answer_format'?"),
    ({"evaluaton": {}}, "unknown key 'evaluaton'; did you mean 'evaluation'?"),
    ({"data": {"test_size": 0}}, "key 'data.test_size': Input should be greater than or equal to 1 (got 0)"),
    ({"data": {"source": "mnist"}}, "key 'data.source'"),
    ({"experiments": {"a": {"finetune": "qlora"}}}, "key 'experiments.a.finetune'"),
    ({"experiments": {"base": {}}}, "experiment name 'base'"),
    ({"experiments": {"a": {"stages": ["rl"]}}}, "rl needs prep_sft"),
    # the RL stage's keys by its method's name, as configs wrote them before the stage was named rl
    ({"stages": {"grpo": {"beta": 0.1}}}, "unknown key 'stages.grpo'; did you mean 'stages.rl'? (the RL stage is "
                                          "named rl)"),
    ({"experiments": {"a": {"grpo_from": "full_sft"}}}, "did you mean 'experiments.a.rl_from'?"),
    ({"data": {"grpo_size": 8}}, "unknown key 'data.grpo_size'; did you mean 'data.rl_size'?"),
    ({"experiments": {"a": {"stages": ["prep_sft", "grpo"]}}}, "(got 'grpo'); did you mean 'rl'?"),
    ({"experiments": {"a": {"overrides": {"grpo": {}}}}}, "(got 'grpo'); did you mean 'rl'?"),
    ({"data": {"source": "jsonl"}}, "needs data.train_file and data.test_file"),
    # numbers that pass a lax parser and fail (or train backwards) hours later
    ({"seed": 2**32}, "key 'seed': Input should be less than or equal to 4294967295 (got 4294967296)"),
    ({"data": {"seed": -1}}, "key 'data.seed': Input should be greater than or equal to 0"),
    ({"experiments": {"a": {"sweep": {"seed": [0, 2**40]}}}}, "key 'experiments.a-seed1099511627776.seed'"),
    ({"stages": {"rl": {"temperature": float("inf")}}}, "key 'stages.rl.temperature': Input should be a finite"),
    ({"confidence": {"temperature": float("nan")}}, "key 'confidence.temperature': Input should be a finite"),
    ({"evaluation": {"batch_size": True}}, "key 'evaluation.batch_size': Input should be a valid integer (got True)"),
    ({"data": {"test_size": "32"}}, "key 'data.test_size': Input should be a valid integer (got '32')"),
    # training_args: TRL's names, kinds and sane ranges, before any job
    ({"stages": {"prep_sft": {"training_args": {"learning_rate": -1.0e-4}}}},
     "key 'stages.prep_sft.training_args.learning_rate': must be > 0 (got -0.0001)"),
    ({"stages": {"prep_sft": {"training_args": {"learning_rate": float("inf")}}}},
     "key 'stages.prep_sft.training_args.learning_rate': expected a finite number (got inf)"),
    ({"stages": {"full_sft": {"training_args": {"learning_rate": "fast"}}}},
     "key 'stages.full_sft.training_args.learning_rate': expected a finite number (got 'fast')"),
    ({"stages": {"full_sft": {"training_args": {"learning_rate": "1e-4"}}}}, "YAML reads 1e-4 as text"),
    ({"stages": {"rl": {"training_args": {"per_device_train_batch_size": 0}}}},
     "key 'stages.rl.training_args.per_device_train_batch_size': must be >= 1 (got 0)"),
    ({"stages": {"prep_sft": {"training_args": {"num_train_epochs": -2}}}},
     "key 'stages.prep_sft.training_args.num_train_epochs': must be > 0 (got -2)"),
    ({"stages": {"prep_sft": {"training_args": {"max_steps": True}}}},
     "key 'stages.prep_sft.training_args.max_steps': expected an integer (got True)"),
    ({"stages": {"prep_sft": {"training_args": {"learnin_rate": 1.0e-4}}}},
     "unknown key 'stages.prep_sft.training_args.learnin_rate' (not a trl.SFTConfig field; did you mean "
     "'learning_rate'?)"),
    ({"stages": {"rl": {"training_args": {"lr_scheduler_type": "cosin"}}}},
     "key 'stages.rl.training_args.lr_scheduler_type': expected one of linear, cosine,"),
    ({"experiments": {"a": {"overrides": {"rl": {"training_args": {"bf16": True}}}}}},
     "key 'experiments.a.overrides.rl.training_args.bf16' is set by the pipeline: use model.mixed_precision"),
    ({"experiments": {"a": {"overrides": {"rl": {"training_args": "fast"}}}}},
     "experiments.a.overrides.rl.training_args: Input should be a valid dictionary"),
    ({"experiments": {"a": {"overrides": {"full_sft": {"training_args": {"max_steps": 0}}}}}},
     "key 'experiments.a.overrides.full_sft.training_args.max_steps': must be >= 1 (or -1"),
    # names become paths and shell words: the whole name must match
    ({"experiments": {"a\n": {}}}, "experiment name 'a\\n' must match"),
    ({"data": {"extra_test_files": {"ood\n": "config.yaml"}}}, "extra_test_files: 'ood\\n' must match"),
    ({"experiments": {"a": {"chat_template_kwargs": {"add_generation_prompt": False}}}},
     "key 'experiments.a.chat_template_kwargs': add_generation_prompt: set by the pipeline when it renders prompts"),
    ({"experiments": {"a": {"chat_template_kwargs": {"tokenize": True, "enable_thinking": False}}}},
     "key 'experiments.a.chat_template_kwargs': tokenize: set by the pipeline"),
    ({"evaluation": {"reward_model": "no/such/rm"}},
     "key 'evaluation.reward_model': no/such/rm: not a model folder (no config.json)"),
])
def test_bad_values_fail_in_one_line_naming_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        validate_config(patch)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_schema_file_is_generated_from_the_model():
    current = (REPO / "workflow" / "schemas" / "config.schema.json").read_text()
    assert current == schema_json(), "run: gsm-pipeline validate --schema workflow/schemas/config.schema.json"
    assert "description" in json.loads(current)["$defs"]["RLStageConfig"]["properties"]["beta"]


@pytest.mark.dag
def test_snakemake_dry_run_refuses_a_bad_key_before_any_job(tmp_path):
    errors = dry_run_refusal(tmp_path, yaml.safe_dump({"stages": {"rl": {"temprature": 0.7}}}), "temprature")
    assert errors == ["config error: unknown key 'stages.rl.temprature'; did you mean 'temperature'?"]


def test_jobs_receive_only_the_settings_they_read():
    cfg = validate_config({})
    changed = validate_config({"experiments": {"tagged": {"rewards": ["binary"]}}})
    assert cfg.stage_job("tagged", "prep_sft") == changed.stage_job("tagged", "prep_sft")
    assert cfg.stage_job("tagged", "rl") != changed.stage_job("tagged", "rl")
    assert cfg.eval_job(cfg.prompt_spec("tagged")) == changed.eval_job(changed.prompt_spec("tagged"))


@pytest.mark.dag
def test_a_bad_training_argument_is_refused_at_the_dry_run_in_one_line(tmp_path):
    overlay = "stages:\n  full_sft:\n    training_args:\n      learning_rate: 1e-5\n"
    errors = dry_run_refusal(tmp_path, overlay, "learning_rate")
    assert errors == ["config error: key 'stages.full_sft.training_args.learning_rate': expected a finite number "
                      "(got '1e-5'): YAML reads 1e-5 as text, write it with a dot and a signed exponent (e.g. "
                      "1.0e-4)"]


@pytest.mark.parametrize("content, message", [
    (b"seed: 0\ndata:\n  seed: 1\n  seed: 2\n", "line 4: key 'seed' given twice (first on line 3)"),
    (b"seed: 0\nseed: 1\n", "line 2: key 'seed' given twice (first on line 1)"),
    (b"- seed\n", "expected a mapping of config keys at the top level, got a list"),
    (b"seed: 0\nmodel:\n  source: \xff\xfe\n", "line 3: not UTF-8 text (byte 0xff)"),
    (b"seed: [0\n", "not valid YAML"),
])
def test_config_files_are_read_strictly_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("content, message", [
    (None, "config error: config.yaml: config file not found"),
    (b"seed: 0\nseed: 1\n", "config error: config.yaml: line 2: key 'seed' given twice (first on line 1)"),
    (b"- a\n", "config error: config.yaml: expected a mapping of config keys at the top level, got a list"),
    (b"seed: \xff\n", "config error: config.yaml: line 1: not UTF-8 text (byte 0xff)"),
])
@pytest.mark.dag
def test_snakemake_reads_the_default_config_file_strictly(tmp_path, content, message):
    if content is not None:
        (tmp_path / "config.yaml").write_bytes(content)
    done = subprocess.run(["snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert message in (done.stdout + done.stderr).splitlines()


@pytest.mark.dag
def test_snakemake_refuses_a_key_given_twice_in_a_configfile_overlay(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("stages:\n  rl:\n    beta: 0.0\n    beta: 0.1\n")
    done = subprocess.run(["snakemake", "-n", "--configfile", str(overlay)], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert f"config error: {overlay}: line 4: key 'beta' given twice (first on line 3)" in done.stderr.splitlines()


@pytest.mark.dag
def test_overlays_and_command_line_values_still_merge_over_the_default_config(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("data:\n  test_size: 5\n")
    done = subprocess.run(["snakemake", "-n", "-p", "--forceall", "--configfile", str(overlay),
                           "--config", "seed=7"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    def settings(module: str) -> dict:
        command = next(line for line in done.stdout.splitlines() if f"gsm_pipeline.jobs.{module} " in line)
        return json.loads(command.split("--config '", 1)[1].split("' --")[0])

    data = settings("prepare_data")
    assert data["test_size"] == 5 and data["prep_sft_size"] == 320  # merged key by key
    assert settings("train_sft")["seed"] == 7


def test_every_path_placeholder_in_a_shell_command_is_quoted():
    """A path with a space or a newline never splits a command: Snakemake's :q quotes each placeholder."""
    import re

    unquoted = []
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name in re.findall(r"\{((?:input|output|log)[^{}:]*)\}", rules.read_text()):
            unquoted.append(f"{rules.name}: {{{name}}}")
    assert unquoted == []
