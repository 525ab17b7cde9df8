"""What a job would refuse when it starts is refused by the dry-run, before any job, in one line naming the key:
TRL's own config checks with the stage's process count, paths that must exist, learning-curve and checkpoint
steps past the stage's end (counted from its rows, batch, accumulation, processes and epochs as the trainer
counts them), and RL stages with fewer prompts than one generation batch."""
import subprocess

import pytest

from conftest import REPO, arithmetic_rows, dry_run_refusal, gsm_config, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.preflight import describe, planned_stages, preflight
from gsm_pipeline.stages import STAGES

GPU_PRESETS = sorted((REPO / "workflow/presets").glob("*-gsm8k.yaml"))


def default_merged(*overlays: dict) -> dict:
    """The GSM-style pair (the rows these checks name) under `overlays`."""
    raw = gsm_config()
    for overlay in overlays:
        raw = merge(raw, overlay)
    return raw


def refused(*overlays: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        preflight(validate_config(default_merged(*overlays)))
    return str(caught.value)


def test_trl_refuses_a_generation_batch_at_the_dry_run_with_the_stages_process_count():
    # 4 completions per device x 1 step per generation x 1 process = 4, which 8 completions per prompt cannot divide
    message = refused({"stages": {"rl": {"training_args": {"gradient_accumulation_steps": 1}}}})
    assert message == ("stages.rl.training_args.per_device_train_batch_size, "
                       "stages.rl.training_args.gradient_accumulation_steps, stages.rl.num_generations: "
                       "trl.GRPOConfig refuses this stage's settings with 1 process: generation_batch_size (4) "
                       "must be divisible by num_generations (8).")
    # the same batch on 2 processes is a generation batch of 8: TRL accepts it, so does the dry-run
    preflight(validate_config(default_merged({"stages": {"rl": {
        "launcher": "ddp", "processes": 2, "training_args": {"gradient_accumulation_steps": 1}}}})))


def test_a_rows_override_that_trl_refuses_is_named_at_the_override():
    message = refused({"experiments": {"tagged_conf": {"rl": "rloo", "overrides": {"rl": {
        "num_generations": 3}}}}})
    keys, _, reason = message.partition(": trl.RLOOConfig refuses this stage's settings with 1 process: ")
    assert "experiments.tagged_conf.overrides.rl.num_generations" in keys.split(", ")
    assert reason == "generation_batch_size (8) must be divisible by num_generations (3)."


def test_a_curve_step_past_an_epoch_trained_stages_end_is_refused_before_any_job():
    # prep SFT: 64 rows / (4 per device x 2 accumulation) = 8 steps per epoch, 2 epochs = 16 steps
    message = refused({"stages": {"prep_sft": {"eval_checkpoints": [8, 16]}}})
    assert message == ("stages.prep_sft.eval_checkpoints: step 16 is not before the stage's last step (16 optimizer "
                       "steps: 64 rows / (4 per device x 1 process) / 2 accumulation = 8 steps per epoch x 2 epochs), "
                       "which the stage's own evaluation covers")
    preflight(validate_config(default_merged({"stages": {"prep_sft": {"eval_checkpoints": [8, 15]}}})))


def test_checkpoint_steps_that_never_come_are_refused_naming_where_they_are_set():
    message = refused({"experiments": {"tagged": {"overrides": {"full_sft": {"training_args": {"save_steps": 11}}}}}})
    assert message.startswith("experiments.tagged.overrides.full_sft.training_args.save_steps: 11 is past the "
                              "stage's last step (10 optimizer steps: 80 rows")
    # the same stage on 4 processes is 3 steps long: the inherited save_steps 8 never comes
    assert refused({"stages": {"full_sft": {"launcher": "ddp", "processes": 4}}}).startswith(
        "stages.full_sft.training_args.save_steps: 8 is past the stage's last step (3 optimizer steps")
    preflight(validate_config(default_merged({"stages": {"full_sft": {"launcher": "ddp", "processes": 4,
                                                                      "training_args": {"save_strategy": "no"}}}})))


def test_an_rl_stage_needs_prompts_for_one_generation_batch_and_no_more():
    grpo = {"rl": {"num_generations": 8, "training_args": {"per_device_train_batch_size": 16,
                                                             "gradient_accumulation_steps": 1}}}
    message = refused({"data": {"rl_size": 1}, "stages": grpo})
    assert message.startswith("data.rl_size: 1 prompts are fewer than one generation batch needs (max_steps 6; "
                              "1 prompts / 2 per generation")
    # a generation batch of 16 completions is 2 prompts of 8: two prompts are enough
    preflight(validate_config(default_merged({"data": {"rl_size": 2}, "stages": grpo})))


def test_an_rft_curve_step_past_what_its_kept_samples_could_train_is_refused_before_sampling():
    """RFT's rows are the samples it keeps, known after sampling; but it keeps at most `keep` per question, so a
    step past that bound can never come: refused at the dry-run, not after minutes of sampling."""
    row = {"experiments": {"r": {"stages": ["prep_sft", "rft"]}}}
    message = refused(row, {"stages": {"rft": {"eval_checkpoints": [40]}}})
    assert message.startswith("stages.rft.eval_checkpoints: step 40 is not before the stage's last step (at most "
                              "32 optimizer steps: 64 questions x at most 4 kept samples = 256 rows")
    assert refused(row, {"stages": {"rft": {"training_args": {"save_steps": 33}}}}).startswith(
        "stages.rft.training_args.save_steps: 33 is past the stage's last step (at most 32 optimizer steps")
    preflight(validate_config(default_merged(row, {"stages": {"rft": {"eval_checkpoints": [31]}}})))


@pytest.mark.parametrize("section, key, value", [
    ("model", "source", "./models/nowhere"),
    ("data", "gsm8k_path", "/nonexistent/gsm8k"),
    ("data", "extra_test_files", {"ood": "nowhere/test.jsonl"}),
])
def test_paths_a_job_reads_must_exist_at_the_dry_run(section, key, value):
    overlay = {section: {key: value, **({"source": "gsm8k"} if key == "gsm8k_path" else {})}}
    with pytest.raises(ConfigError, match=rf"^key '{section}\.{key}[.a-z]*': .*(not found|no such file)"):
        validate_config(default_merged(overlay))


def test_jsonl_data_files_must_exist_at_the_dry_run(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(4, seed=0))
    with pytest.raises(ConfigError, match=r"^key 'data.test_file': .*no such file"):
        validate_config(default_merged({"data": {"source": "jsonl", "train_file": str(train),
                                                 "test_file": str(tmp_path / "test.jsonl")}}))


def test_stage_lengths_are_what_the_trainers_count(tmp_path, tiny_model):
    """The dry-run's count against the trainer's own `state.max_steps` at train begin, for SFT by epochs with a
    remainder batch, GRPO and RLOO by epochs with leftover prompts, and max_steps."""
    from transformers import TrainerCallback

    from gsm_pipeline.jobs import train_rl, train_sft

    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(11, seed=3))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)

    class Counted(Exception):
        pass

    class Count(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            raise Counted(state.max_steps)

    cases = [("prep_sft", {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,  # 3 batches, the
                           "num_train_epochs": 3}, {}),  # last one short, make 2 steps of 2 and 1 micro-batches
             ("rl", {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "num_train_epochs": 2,
                       "max_steps": -1}, {"num_generations": 2}),
             ("rl", {"per_device_train_batch_size": 6, "gradient_accumulation_steps": 1, "num_iterations": 2,
                       "num_train_epochs": 1, "max_steps": -1}, {"num_generations": 3, "rl": "rloo"}),
             ("full_sft", {"per_device_train_batch_size": 2, "max_steps": 7}, {}),
             ("prep_sft", {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2,  # the short batch
                           "num_train_epochs": 3, "dataloader_drop_last": True}, {})]  # dropped: 1 step per epoch
    for stage, args, extra in cases:
        rl = extra.pop("rl", "grpo")
        cfg = validate_config({"data": {"prep_sft_size": 11, "full_sft_size": 11, "rl_size": 11},
                               "stages": {stage: {**extra, "training_args": {**args, "save_steps": 1}}},
                               "experiments": {"tagged": {"rl": rl}}})
        planned = {p.stage: p for p in planned_stages(cfg)}[stage]
        module = train_rl if stage == "rl" else train_sft
        trainer, _ = module.build_trainer(planned.job, str(tiny_model), str(data), tmp_path / f"{stage}-{rl}")
        trainer.add_callback(Count())
        with pytest.raises(Counted) as counted:
            trainer.train()
        assert counted.value.args[0] == planned.length.steps, (stage, rl, planned.length.how)


@pytest.mark.parametrize("preset", GPU_PRESETS, ids=lambda p: p.stem)
def test_gpu_presets_plan_stages_whose_curve_and_save_steps_fit_through_the_workflows_own_merge(preset):
    overlay = load_config_file(preset)
    planned = preflight(validate_config(default_merged(overlay)))
    # every stage's length is counted; RFT's as a bound: its rows are the samples it keeps, at most keep a question
    assert all(p.length is not None and p.length.bound == (STAGES[p.stage].kind == "rft") for p in planned)
    # a preset states every setting its stages' length and memory depend on, rather than inheriting the CPU default's
    for stage, section in overlay["stages"].items():
        stated = {*section, *section["training_args"]}
        assert {"gradient_checkpointing", "eval_checkpoints", "per_device_train_batch_size",
                "gradient_accumulation_steps", "learning_rate", "save_steps"} <= stated, (stage, stated)
        assert {"num_train_epochs", "max_steps"} & stated, stage


@pytest.mark.dag
def test_validate_prints_each_stages_effective_settings_and_length():
    done = subprocess.run(["gsm-pipeline", "validate", "config.yaml", "workflow/presets/qwen3-4b-gsm8k.yaml"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    lines = [line.strip() for line in done.stdout.splitlines() if "steps (" in line]
    prep = next(line for line in lines if "(tagged prep_sft)" in line)
    assert "16 steps (500 rows / (4 per device x 8 processes) / 2 accumulation = 8 steps per epoch x 2 epochs)" in prep
    assert "launcher=zero3" in prep and "gradient_checkpointing=True" in prep and "learning_rate=1e-05" in prep
    assert len(lines) == len(describe(planned_stages(validate_config(default_merged(load_config_file(
        REPO / "workflow/presets/qwen3-4b-gsm8k.yaml"))))))


@pytest.mark.dag
def test_snakemake_dry_run_refuses_what_trl_would_refuse_at_the_rl_stage(tmp_path):
    errors = dry_run_refusal(tmp_path, "stages:\n  rl:\n    training_args:\n      gradient_accumulation_steps: 1\n",
                             "GRPOConfig")
    assert len(errors) == 1 and errors[0].startswith("config error: stages.rl.training_args.per_device_train_")


def test_trls_own_generation_levers_and_vllm_fields_pass_the_dry_run_to_the_rl_trainer():
    """TRL's rollout settings besides the engine (generation.engine decides continuous batching) are the RL
    stage's training_args: the generation batch and vLLM (untested here, README says why) are not refused, and
    reach TRL's config as written."""
    levers = {"generation_batch_size": 16, "use_vllm": True, "vllm_mode": "colocate"}
    [grpo] = [p for p in preflight(validate_config(default_merged({"stages": {"rl": {"training_args": levers}}})))
              if p.stage == "rl"][:1]
    assert {k: grpo.job.training_args[k] for k in levers} == levers
