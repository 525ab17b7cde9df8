"""The experiment matrix on disk: identical stages are shared, the dry-run plans exactly the jobs a
config implies (counts written by hand), and a target naming something undeclared fails in one line."""
import json
import shlex

import pytest
import yaml

from conftest import REPO, Dag
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.layout import check_target, eval_samples, evaluations, runs, stage_run

pytestmark = pytest.mark.dag  # starts Snakemake or a command in a subprocess

BINARY = {"answer_format": "tagged", "rewards": ["binary"]}


STAGES = ("prep_sft", "full_sft", "rl")


def shared(cfg, a, b):
    return [stage_run(cfg, a, s) == stage_run(cfg, b, s) for s in STAGES]


def test_a_row_that_only_changes_grpo_shares_the_sft_stages_it_does_not_change():
    cfg = validate_config({"experiments": {"plain": {}, "binary": BINARY, "conf": {"confidence": True}}})
    assert shared(cfg, "plain", "binary") == [True, True, False]
    assert shared(cfg, "plain", "conf") == [False, False, False]
    assert cfg.prompt_key("binary") == cfg.prompt_key("plain") == "tagged-chat"
    assert cfg.prompt_key("conf") == "tagged-chat-conf"  # the base model is evaluated with both prompts
    assert evaluations(cfg)[:2] == [("base", "tagged-chat"), (stage_run(cfg, "plain", "prep_sft"), "tagged-chat")]


def test_grpo_from_full_sft_is_a_different_grpo_stage():
    cfg = validate_config({"experiments": {"a": {}, "b": {"rl_from": "full_sft"}}})
    assert shared(cfg, "a", "b") == [True, True, False]


def test_a_stage_folder_depends_on_its_training_chain_only_never_on_the_other_rows_or_their_order():
    rows = {"tagged": {}, "conf": {"confidence": True}, "lr": {"overrides": {"rl": {"training_args": {
        "learning_rate": 1.0e-6}}}}}
    alone = validate_config({"experiments": {"tagged": {}}})
    for order in (["tagged", "conf", "lr"], ["lr", "conf", "tagged"], ["conf", "tagged", "lr"]):
        cfg = validate_config({"experiments": {name: rows[name] for name in order}})
        assert [stage_run(cfg, "tagged", s) for s in STAGES] == [stage_run(alone, "tagged", s) for s in STAGES]
        assert shared(cfg, "lr", "tagged") == [True, True, False]
    assert [stage_run(alone, "tagged", s).split("-")[0] for s in STAGES] == list(STAGES)  # named <stage>-<chain>


def test_each_evaluation_samples_as_many_as_its_folder_asks_and_a_shared_folder_the_most():
    """Samples cost most of a GPU run: they are drawn where pass@k is read (the base, the central rows' final
    stages), and a row read greedy (a seed, a control) or a curve point can ask for none."""
    rows = {"central": {}, "control": {"rewards": ["random"], "eval_samples": 0},
            "seed": {"seed": 7, "eval_samples": 2}}
    stages = {"rl": {"eval_checkpoints": [2], "training_args": {"max_steps": 4}}}
    cfg = validate_config({"evaluation": {"samples": 8, "curve_samples": 0}, "stages": stages, "experiments": rows})
    prep, rl = stage_run(cfg, "central", "prep_sft"), stage_run(cfg, "central", "rl")
    assert prep == stage_run(cfg, "control", "prep_sft")  # one folder: the control asks 0, central 8
    folders = ("base", prep, rl, stage_run(cfg, "control", "rl"), stage_run(cfg, "seed", "prep_sft"), f"{rl}/step-2")
    assert [eval_samples(cfg, run) for run in folders] == [8, 8, 8, 0, 2, 0]
    as_stage = validate_config({"evaluation": {"samples": 8}, "stages": stages, "experiments": rows})
    control = stage_run(as_stage, "control", "rl")
    assert [eval_samples(as_stage, f"{run}/step-2") for run in (rl, control)] == [8, 0]  # as their stage
    assert {job.samples for job in (cfg.eval_job(cfg.prompt_spec("central")),)} == {8}  # the section's default
    greedy = validate_config({"evaluation": {"samples": 0}, "stages": stages, "experiments": rows})
    assert eval_samples(greedy, "base") == 2  # the one row that samples is read against the base's samples


def test_a_row_may_ask_its_stages_for_different_sample_counts_and_only_for_its_own_stages():
    rows = {"central": {"eval_samples": {"prep_sft": 2}}, "other": {"rewards": ["random"]}}
    cfg = validate_config({"evaluation": {"samples": 8}, "experiments": rows})
    prep, rl = stage_run(cfg, "central", "prep_sft"), stage_run(cfg, "central", "rl")
    assert prep == stage_run(cfg, "other", "prep_sft")  # shared: the other row asks 8 there, so 8
    alone = validate_config({"evaluation": {"samples": 8}, "experiments": {"central": rows["central"]}})
    assert [eval_samples(alone, run) for run in ("base", stage_run(alone, "central", "prep_sft"),
                                                 stage_run(alone, "central", "rl"))] == [8, 2, 8]
    assert eval_samples(cfg, prep) == 8 and eval_samples(cfg, rl) == 8
    greedy = validate_config({"evaluation": {"samples": 0}, "experiments": {"central": {"eval_samples": {"rl": 4}}}})
    assert eval_samples(greedy, "base") == 4  # the RL stage's pass@4 is read against the base's
    with pytest.raises(ConfigError, match=r"eval_samples: rft is not a stage of this row \(stages: prep_sft, "):
        validate_config({"experiments": {"central": {"eval_samples": {"rft": 4}}}})


def test_the_qwen3_preset_samples_64_where_coverage_is_read_and_8_at_the_sft_stages():
    cfg = validate_config(merge(load_config_file(REPO / "config.yaml"),
                                load_config_file(REPO / "workflow/presets/qwen3-4b-gsm8k.yaml")))
    final = {stage: {eval_samples(cfg, stage_run(cfg, row, stage)) for row in ("tagged", "tagged_conf")}
             for stage in ("prep_sft", "full_sft", "rl")}
    assert final == {"prep_sft": {8}, "full_sft": {8}, "rl": {64}} and eval_samples(cfg, "base") == 64


def test_the_qwen_preset_samples_only_the_base_and_the_central_rows_final_stages():
    cfg = validate_config(merge(load_config_file(REPO / "config.yaml"),
                                load_config_file(REPO / "workflow/presets/qwen2.5-0.5b-gsm8k.yaml")))
    sampled = {run for run, _ in evaluations(cfg) if eval_samples(cfg, run)}
    central = {stage_run(cfg, row, stage) for row in ("tagged", "tagged_conf", "rft", "distill")
               for stage in cfg.experiments[row].stages}
    assert sampled == {"base", *central} and {eval_samples(cfg, run) for run in sampled} == {64}
    assert len(evaluations(cfg)) == 38 and len([e for e in evaluations(cfg) if e[0] in sampled]) == 10


@pytest.fixture(scope="module")
def default_dag(tmp_path_factory):
    """The GSM-style pair (workflow/presets/gsm-symbolic-cpu.yaml), the base the presets below overlay."""
    return Dag(tmp_path_factory.mktemp("default"), {})


def test_the_gsm_preset_plans_the_plain_and_confidence_pair(default_dag):
    # shared: data, model; once: the confidence targets; per experiment: 3 trainings;
    # evaluations: 2 base prompts + 6 trained stages, on 2 test sets
    assert default_dag.planned_jobs() == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2, "full_sft": 2, "rl": 2,
        "evaluate": 16, "report": 1, "all": 1}


def test_adding_rows_plans_only_what_is_new(default_dag):
    default_dag.write_config({"experiments": {
        "tagged_binary": BINARY,                                                       # new GRPO only
        "tagged_conf_plain_rl": {"confidence": True, "rewards": ["format", "correctness"]},  # new GRPO only
    }}, "more.yaml")
    assert default_dag.planned_jobs("more.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2, "full_sft": 2, "rl": 4,
        "evaluate": 20, "report": 1, "all": 1}


@pytest.mark.parametrize("target, message", [
    ("results/nosuch/rl/model", "undeclared experiment 'nosuch'; declared: tagged, tagged_conf"),
    ("results/tagged/ppo/model", "unknown stage 'ppo'"),
    ("results/base/eval/boxed-raw/symbolic_id/metrics.json", "no experiment uses prompt 'boxed-raw'"),
    ("results/base/eval/tagged-chat/nosuch/metrics.json", "unknown test set 'nosuch'"),
    ("results/rl-0123abcd/model", r"results/rl-0123abcd: no experiment trains this stage with the settings"),
    ("results/tagged/rl/eval/tagged-chat/symbolic_id", r"named by their training chain; ask for "
                                                         r"results/rl-[0-9a-f]{8}/eval/tagged-chat/symbolic_id$"),
])
def test_a_target_naming_something_undeclared_fails_in_one_line(target, message):
    with pytest.raises(ConfigError, match=message):
        check_target(target, validate_config({"experiments": {"tagged": {}, "tagged_conf": {"confidence": True}}}))


def test_a_stage_the_experiment_does_not_run_is_named():
    cfg = validate_config({"experiments": {"sft_only": {"stages": ["prep_sft", "full_sft"]}}})
    with pytest.raises(ConfigError, match=r"'sft_only' does not run rl \(experiments.sft_only.stages: "):
        check_target("results/sft_only/rl/model", cfg)
    check_target("results/report/index.html", cfg)  # shared folders pass


def test_snakemake_refuses_an_undeclared_experiment_target_in_one_line(default_dag):
    done = default_dag.snakemake("-n", "results/nosuch/rl/model", check=False)
    assert done.returncode != 0
    assert ("config error: target results/nosuch/rl/model: undeclared experiment 'nosuch'; "
            "declared: tagged, tagged_conf") in done.stderr + done.stdout
    assert "No rule to produce" not in done.stderr + done.stdout


def test_chat_template_kwargs_reach_the_prompt_and_get_their_own_base_evaluation(tiny_model):
    from transformers import AutoTokenizer

    from gsm_pipeline.prompts import render_prompt

    cfg = validate_config({"experiments": {"a": {}, "b": {"chat_template_kwargs": {"enable_thinking": False}}}})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
                               "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}")
    assert "<think></think>" in render_prompt("q", cfg.prompt_spec("b"), tokenizer)
    assert "<think></think>" not in render_prompt("q", cfg.prompt_spec("a"), tokenizer)
    assert cfg.prompt_key("a") != cfg.prompt_key("b")  # its own base evaluation
    assert shared(cfg, "a", "b")[0] is False  # a different prompt is a different training job


# GSM8K has one test set: 2 base prompts + 6 stages = 8 evaluations, plus each row's learning-curve points
# (eval_checkpoints; the pair's rows train every stage apart): qwen2.5 and gemma 2 prep + 2 full + 4 GRPO
# (every 100 of 500 steps) = 8 per row; qwen3 2 + 2 + 3 (every 75 of 300) = 7 per row. qwen2.5 adds the reward
# controls: a prep SFT per seed (1, 2, 3; shared by the three rewards) and 3 x 3 RL stages, final points only;
# and the rft row: one RFT stage from tagged's prep SFT.
@pytest.mark.parametrize("preset, evaluations, controls", [
    ("qwen2.5-0.5b-gsm8k", 8 + 2 * 8 + 3 + 9 + 1 + 1, True), ("qwen3-4b-gsm8k", 8 + 2 * 7, False),
    ("gemma-3-1b-it-gsm8k", 8 + 2 * 8, False)])
def test_gpu_presets_dry_run_the_whole_pair(default_dag, preset, evaluations, controls):
    assert default_dag.planned_jobs(f"workflow/presets/{preset}.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2 + 3 * controls, "full_sft": 2,
        "rl": 2 + 9 * controls, **({"rft": 1, "distill": 1, "fetch_teacher": 1} if controls else {}),
        "evaluate": evaluations, "report": 1, "all": 1}


@pytest.fixture(scope="module")
def arith_dag(tmp_path_factory):
    return Dag(tmp_path_factory.mktemp("arith"), {}, base=REPO / "config.yaml")


def test_the_default_config_plans_sft_grpo_and_a_random_reward_control(arith_dag):
    # one prep SFT shared by both rows; full SFT and GRPO for arith, GRPO for the control;
    # evaluations: the base + 4 trained stages, on 4 test sets (rg_id, rg_harder, and the battery's rg_sub, rg_mul)
    assert arith_dag.planned_jobs() == {
        "prepare_data": 1, "fetch_model": 1, "prep_sft": 1, "full_sft": 1, "rl": 2, "evaluate": 20, "report": 1,
        "all": 1}
    assert arith_dag.run("arith", "prep_sft") == arith_dag.run("arith_random", "prep_sft")


def test_the_cpu_curves_overlay_adds_one_point_per_trained_stage(arith_dag):
    # the default's 20 evaluations, plus one point in each of 4 trained stages on each of 4 test sets
    assert arith_dag.planned_jobs("workflow/presets/cpu-curves.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "prep_sft": 1, "full_sft": 1, "rl": 2, "evaluate": 20 + 4 * 4,
        "report": 1, "all": 1}


def test_an_evaluation_job_is_given_its_folders_sample_count(arith_dag):
    curves = yaml.safe_load((REPO / "workflow/presets/cpu-curves.yaml").read_text())
    arith_dag.write_config({**curves, "evaluation": {"samples": 4, "curve_samples": 0},
                            "experiments": {"arith_random": {"eval_samples": 0}}}, "sampled.yaml")
    commands = [line for line in arith_dag.snakemake("-n", "-p", configfile="sampled.yaml").stdout.splitlines()
                if "gsm_pipeline.jobs.evaluate" in line]
    cfg = arith_dag.config("sampled.yaml")
    control = stage_run(cfg, "arith_random", "rl")
    counts = {}
    for line in commands:
        out = line.split("--out ")[1].split()[0].removeprefix("results/").split("/eval/")[0]
        counts[out] = json.loads(shlex.split(line.split("--config ")[1])[0])["samples"]
    assert counts["base"] == counts[stage_run(cfg, "arith", "prep_sft")] == 4 and counts[control] == 0
    assert {n for run, n in counts.items() if "/step-" in run} == {0}


def test_the_cpu_analyses_overlay_samples_and_measures_kl_in_the_same_jobs(default_dag):
    preset = "workflow/presets/cpu-analyses.yaml"
    assert default_dag.planned_jobs(preset) == default_dag.planned_jobs("tiny.yaml")
    job = default_dag.config(preset).eval_job(default_dag.config(preset).prompt_spec("tagged"))
    assert (job.samples, job.kl_to_base) == (8, True)
    trained = f"results/{default_dag.run('tagged', 'rl', preset)}/eval/tagged-chat/symbolic_id/metrics.json"
    for configfile, flag in ((preset, "--reference resources/model"), ("tiny.yaml", "")):
        [command] = [line for line in default_dag.snakemake("-n", "-p", "-f", trained, configfile=configfile)
                     .stdout.splitlines() if "gsm_pipeline.jobs.evaluate" in line and trained.rsplit("/", 1)[0]
                     in line]
        assert ("--reference" in command) == bool(flag) and flag in command  # the default measures none


def test_an_rft_row_plans_one_rft_job_on_the_rl_questions_from_the_shared_prep_sft(default_dag):
    default_dag.write_config({"experiments": {"rft_row": {"stages": ["prep_sft", "rft"]}}}, "rft.yaml")
    # new: the RFT stage (its prep SFT is tagged's) and its evaluation on the 2 test sets
    assert default_dag.planned_jobs("rft.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2, "full_sft": 2, "rl": 2,
        "rft": 1, "evaluate": 18, "report": 1, "all": 1}
    out = default_dag.snakemake("-n", "-p", configfile="rft.yaml").stdout
    [command] = [line for line in out.splitlines() if "gsm_pipeline.jobs.train_rft" in line and "--parent" in line]
    assert f"--parent results/{default_dag.run('tagged', 'prep_sft', 'rft.yaml')}/model" in command
    assert "--data results/data/rl.jsonl" in command
    assert f"--out results/{default_dag.run('rft_row', 'rft', 'rft.yaml')}/model" in command


def test_the_full_matrix_plans_every_variant_once(default_dag):
    # Counted by hand from workflow/presets/full-matrix.yaml (GSM8K: one test set).
    # prep_sft 12: tagged (shared by sft_chat, grpo_chat, grpo_from_full, lr-*), tagged_conf, sft_raw_full,
    #   sft_raw_answer (shared by grpo_raw), fmt_gsm8k, fmt_boxed, lora-r8, lora-r32, socratic, seeds-seed1, -seed2
    #   (shared by the reward controls' seeds 1 and 2), and the controls' seed 3 (shared by all three)
    # full_sft 13: the owners of the first 11 prep stages each train one, plus lr's two learning rates
    # grpo 20: tagged, tagged_conf, grpo_chat, grpo_raw, fmt_gsm8k, fmt_boxed, lora-r8, lora-r32, grpo_from_full,
    #   seeds-seed1, seeds-seed2, and the 3 reward controls x 3 seeds; rft 1 (from tagged's prep SFT); distill 1
    #   (from tagged's prep SFT, taught by tagged's full SFT)
    # evaluate 67: base with 8 distinct prompts; tagged's prep and full asked chat + raw (sft_chat) = 4, its grpo 1,
    #   tagged_conf 3, sft_raw_full 4, sft_raw_answer 4, grpo_chat 2, grpo_raw 2, fmt_gsm8k 6, fmt_boxed 6,
    #   lora 3 + 3, socratic 2, grpo_from_full 1, seeds 3 + 3, lr 1 + 1, rft 1, distill 1, the controls' prep
    #   seed 3 and 9 RL stages
    assert default_dag.planned_jobs("workflow/presets/full-matrix.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 12, "full_sft": 13, "rl": 20,
        "rft": 1, "distill": 1, "evaluate": 69, "report": 1, "all": 1}


def test_grpo_from_full_sft_is_launched_on_the_full_sft_model(default_dag):
    preset = "workflow/presets/full-matrix.yaml"
    done = default_dag.snakemake("-n", "-p", f"results/{default_dag.run('grpo_from_full', 'rl', preset)}/model",
                                 configfile=preset)
    [command] = [line for line in done.stdout.splitlines() if "gsm_pipeline.jobs.train_rl" in line]
    assert f"--parent results/{default_dag.run('tagged', 'full_sft', preset)}/model" in command  # shared


def planned_outputs(dag, configfile):
    out = dag.snakemake("-n", configfile=configfile).stdout
    return {path for line in out.splitlines() if line.strip().startswith("output:")
            for path in line.split(":", 1)[1].strip().split(", ")}


def test_a_row_added_through_a_second_configfile_plans_its_jobs_and_moves_nothing(default_dag):
    before = planned_outputs(default_dag, "tiny.yaml")
    default_dag.write_config({"experiments": {"lr_low": {"overrides": {"rl": {"training_args": {
        "learning_rate": 1.0e-6}}}}}}, "lr.yaml")
    # new: lr_low's GRPO (its SFT stages are tagged's) and its evaluation on the 2 test sets
    assert default_dag.planned_jobs("lr.yaml") == {
        "prepare_data": 1, "fetch_model": 1, "confidence_targets": 1, "prep_sft": 2, "full_sft": 2, "rl": 3,
        "evaluate": 18, "report": 1, "all": 1}
    after = planned_outputs(default_dag, "lr.yaml")
    assert before < after and len(after - before) == 2 + 2 * 4  # a model folder and its log; 2 x 4 eval files


def test_a_jobs_code_inputs_are_the_modules_it_runs_as_checkout_relative_paths(monkeypatch):
    from gsm_pipeline.sources import module_sources

    monkeypatch.chdir(REPO)  # Snakemake runs in the checkout

    def names(module):
        paths = module_sources(module)
        assert all(p.startswith("workflow/gsm_pipeline/") for p in paths)  # relative: the checkout may move
        return {p.removeprefix("workflow/gsm_pipeline/") for p in paths}

    assert names("jobs.fetch_model") == {"jobs/__init__.py", "jobs/fetch_model.py", "errors.py", "model_io.py",
                                         "model_card.py"}
    for entry in ("jobs.train_sft", "jobs.prepare_data"):  # grading, rewards, the matrix, config or report: not SFT
        assert not names(entry) & {"grading/answers.py", "grading/readers.py", "grading/rewards.py", "matrix.py",
                                   "config.py", "layout.py", "jobs/report.py", "reporting/comparison.py"}
    assert "settings/training.py" in names("jobs.train_sft") and "settings/evaluation.py" not in names("jobs.train_sft")
    assert not names("jobs.evaluate") & {"training/stage.py", "config.py", "grading/rewards.py",
                                         "settings/training.py"}
    assert "jobs/evaluate.py" not in names("jobs.confidence_targets")
    # a module imported by name from its package (`from ..grading import harness`) is code the job runs
    for entry in ("jobs.evaluate", "jobs.grade"):
        assert {"grading/harness.py", "grading/protocols.py"} <= names(entry), entry
    assert "grading/harness.py" not in names("jobs.train_sft")  # lm-eval's runner is evaluation's, not SFT's
    assert not any(n.startswith("settings/") and n not in {"settings/__init__.py", "settings/base.py",
                                                            "settings/report.py"} for n in names("jobs.report"))


def test_the_report_job_is_typed_so_a_layout_missing_a_field_is_refused_naming_it():
    """The report reads the matrix's layout by attribute: a layout that lacks a field (or misspells one) stops
    the report job in one line naming it, instead of a KeyError deep inside a plot."""
    import json

    from gsm_pipeline.layout import report_job
    from gsm_pipeline.settings.report import ReportJob

    job = report_job(validate_config({"experiments": {"a": {}, "b": {"rl": "rloo"}}}))
    assert ReportJob.parse(job.as_json()) == job
    written = json.loads(job.as_json())
    del written["experiments"][1]["evaluations"][0]["parent_run"]
    with pytest.raises(ConfigError, match=r"^--config: ReportJob key 'experiments.1.evaluations.0.parent_run': "
                                          r"Field required$"):
        ReportJob.parse(json.dumps(written))


@pytest.mark.parametrize("bookkeeping", [{"report_to": "wandb"}, {"logging_steps": 5}, {"save_steps": 2},
                                         {"run_name": "mine", "save_total_limit": 5}])
def test_settings_that_do_not_change_weights_do_not_change_any_chain(bookkeeping):
    base = runs(validate_config(load_config_file(REPO / "config.yaml")))
    overlay = {"stages": {stage: {"training_args": bookkeeping} for stage in ("prep_sft", "full_sft", "rl")}}
    assert runs(validate_config(merge(load_config_file(REPO / "config.yaml"), overlay))) == base
    weights = {"stages": {"full_sft": {"training_args": {"learning_rate": 1.0e-5}}}}
    assert runs(validate_config(merge(load_config_file(REPO / "config.yaml"), weights))) != base
