"""The real DAG, end to end on the tiny model: every stage trains, saves a loadable model,
is evaluated, and lands in the report; only stale stages are replanned."""
import copy
import json

import pandas as pd
import pytest
import yaml

from conftest import Dag, benchmark_row
from gsm_pipeline.grading.metrics import mcnemar_exact, wilson_interval
from gsm_pipeline.settings.training import SFTJob

pytestmark = [pytest.mark.slow, pytest.mark.dag]

PARENTS = {"prep_sft": "base", "full_sft": "prep_sft", "rl": "prep_sft"}


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def predictions(dag, run: str, prompt: str, testset: str = "test") -> dict[str, dict]:
    path = dag.root / f"results/{run}/eval/{prompt}/{testset}/predictions.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("stage", list(PARENTS))
def test_each_stage_saves_a_loadable_model_that_differs_from_its_parent(tiny_dag, stage):
    from transformers import AutoModelForCausalLM

    folder = tiny_dag.root / "results" / tiny_dag.run("tagged", stage) / "model"
    AutoModelForCausalLM.from_pretrained(folder)
    parent_run = tiny_dag.run("tagged", PARENTS[stage])
    parent = "resources/model" if parent_run == "base" else f"results/{parent_run}/model"
    mine, parent = weights(folder), weights(tiny_dag.root / parent)
    assert mine.keys() == parent.keys()
    assert any(not mine[k].equal(parent[k]) for k in mine), f"{stage} saved its parent's weights unchanged"
    assert not (folder / "trainer_state.json").exists()
    assert not (folder.parent / "checkpoints").exists()  # they resume only an unfinished run: gone once it ends


def test_every_sampled_metric_is_what_its_samples_say(tiny_dag):
    """pass@k, maj@k and best@k of every sampled evaluation, recounted here from samples.jsonl: any of the
    first k correct; the most frequent parseable answer of the first k (ties to the first seen) equal to gold;
    the highest-scored of the first k correct; the unbiased pass@k by enumerating every draw of k samples. The
    trained models here get some samples right."""
    from collections import Counter
    from itertools import combinations

    recounted = 0
    for metrics in sorted(tiny_dag.root.glob("results/**/eval/*/*/metrics.json")):
        sampling = json.loads(metrics.read_text()).get("sampling")
        if not sampling:
            continue
        groups: dict[str, list[dict]] = {}
        for row in map(json.loads, metrics.with_name("samples.jsonl").read_text().splitlines()):
            groups.setdefault(row["id"], []).append(row)
        for k in (1, 2, 4):
            passed = majority = best = 0
            for rows in groups.values():
                first = sorted(rows, key=lambda r: r["sample"])[:k]
                gold = float(first[0]["gold"])
                passed += any(r["correct_strict"] for r in first)
                answers = Counter(r["extracted_strict"] for r in first if r["extracted_strict"] is not None)
                top = max(answers.values(), default=0)
                voted = next((r["extracted_strict"] for r in first if answers.get(r["extracted_strict"]) == top), None)
                majority += voted is not None and float(voted) == gold
                best += max(first, key=lambda r: r["score"])["correct_strict"]
            assert [sampling[f"{m}@{k}"] for m in ("pass", "maj", "best")] == pytest.approx(
                [passed / len(groups), majority / len(groups), best / len(groups)]), f"{metrics} at k={k}"
            # unbiased pass@k: over every k of a question's samples, the share of draws holding a correct one
            draws = [[any(r["correct_strict"] for r in d) for d in combinations(rows, k)] for rows in groups.values()]
            assert sampling["pass_at_k"][str(k)]["estimate"] == pytest.approx(
                sum(sum(d) / len(d) for d in draws) / len(draws)), f"{metrics} unbiased pass@{k}"
        recounted += 1
    assert recounted >= 12  # every sampled evaluation of the matrix


def sample_groups(dag, run: str, prompt: str, testset: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    path = dag.root / f"results/{run}/eval/{prompt}/{testset}/samples.jsonl"
    for row in map(json.loads, path.read_text().splitlines()):
        groups.setdefault(row["id"], []).append(row)
    return groups


def test_the_pass_at_k_section_is_recounted_from_each_stage_and_its_bases_samples(tiny_dag):
    """Every trained model's final sampled evaluation has one row beside its base asked the same way: pass@1 and
    pass@4 by enumerating every draw, the crossing (a sign change of stage - base over k = 1, 2, 4), each
    problem's move between never / sometimes / always solved, and the mean distinct answers."""
    from itertools import combinations

    def pass_at(groups, k):
        return sum(sum(any(r["correct_strict"] for r in d) for d in combinations(g, k)) / len(list(combinations(g, k)))
                   for g in groups.values()) / len(groups)

    def solved(group):
        hits = sum(r["correct_strict"] for r in group)
        return "never" if hits == 0 else "always" if hits == len(group) else "sometimes"

    table = pd.read_csv(tiny_dag.root / "results/report/coverage.csv")
    comparison = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    trained = comparison[(comparison.stage != "base") & ~comparison.run.str.contains("/step-")]
    assert sorted(zip(table.run, table.prompt, table.testset)) == sorted(set(zip(trained.run, trained.prompt,
                                                                                 trained.testset)))
    moved_somewhere = 0
    for row in table.to_dict("records"):
        mine = sample_groups(tiny_dag, row["run"], row["prompt"], row["testset"])
        base = sample_groups(tiny_dag, "base", row["prompt"], row["testset"])
        assert (row["k"], row["questions"]) == (4, len(mine))
        assert [row["pass@1"], row["pass@k"], row["base pass@1"], row["base pass@k"]] == pytest.approx(
            [pass_at(mine, 1), pass_at(mine, 4), pass_at(base, 1), pass_at(base, 4)])
        moves = {f"{a}->{b}": 0 for a in ("never", "sometimes", "always") for b in ("never", "sometimes", "always")}
        for qid in mine:
            moves[f"{solved(base[qid])}->{solved(mine[qid])}"] += 1
        assert {m: row[m] for m in moves} == moves
        moved_somewhere += sum(v for m, v in moves.items() if m.split("->")[0] != m.split("->")[1])
        for column, groups in (("distinct answers", mine), ("base distinct answers", base)):
            assert row[column] == pytest.approx(sum(len({str(r["extracted_strict"]) for r in g})
                                                    for g in groups.values()) / len(groups))
        signs = [d > 0 for d in (pass_at(mine, k) - pass_at(base, k) for k in (1, 2, 4)) if abs(d) > 1e-12]
        assert row["crossing"].startswith("none") == all(s == signs[0] for s in signs), row["crossing"]
    assert moved_somewhere > 0  # training moved some problem between bins: the table is not all diagonal


def test_the_rl_dynamics_are_what_trl_and_the_rewards_logged_and_kl_is_measured_at_evaluation(tiny_dag):
    """Every RL stage logs entropy, clip ratio, the share of flat groups and its split (all right + all wrong, never
    more than the share); training.json's means and entropies are those logged values. Every trained
    model's evaluation measures KL(model || base) on its completions (the base's is 0 by definition), and
    comparison.csv carries it."""
    train = {r["run"]: r for r in json.loads((tiny_dag.root / "results/report/training.json").read_text())}
    rl_runs = [run for run, r in train.items() if r.get("method")]
    assert rl_runs
    for run in rl_runs:
        steps = [h for h in json.loads((tiny_dag.root / f"results/{run}/log_history.json").read_text())
                 if "loss" in h]
        for h in steps:
            assert {"entropy", "clip_ratio/region_mean"} <= set(h)
            split = h["groups/zero_std_all_correct"] + h["groups/zero_std_all_wrong"]
            assert split <= h["groups/zero_std"] + 1e-9  # one definition of flat for the total and its split
            assert h["frac_reward_zero_std"] <= h["groups/zero_std"] + 1e-9  # TRL's exact zeros are flat too
        for quantity in ("correct", "wrong"):
            assert train[run][f"zero_variance_all_{quantity}"] == pytest.approx(
                sum(h[f"groups/zero_std_all_{quantity}"] for h in steps) / len(steps))
        assert (train[run]["first_entropy"], train[run]["last_entropy"]) == (steps[0]["entropy"], steps[-1]["entropy"])
    comparison = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    for row in comparison.drop_duplicates(["run", "prompt", "testset"]).itertuples():
        metrics = json.loads((tiny_dag.root / f"results/{row.run}/eval/{row.prompt}/{row.testset}/metrics.json")
                             .read_text())
        if row.run == "base":
            assert "kl_to_base" not in metrics and row.kl_to_base_per_token == 0
            continue
        kl = metrics["kl_to_base"]
        assert kl["completions"] == metrics["n"] and kl["tokens"] > 0 and kl["reference"] == "resources/model"
        assert kl["per_token"] > 0 and row.kl_to_base_per_token == pytest.approx(kl["per_token"])
        assert row.kl_to_base_per_completion == pytest.approx(kl["per_completion"])


def test_report_compares_every_stage_against_base_with_paired_tests(tiny_dag):
    table = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    pair = table[table.experiment.isin(["tagged", "tagged_conf"]) & table.eval_matches_training]
    assert list(pair["experiment"]) == ["tagged"] * 4 + ["tagged_conf"] * 4
    assert list(pair["stage"]) == ["base", "prep_sft", "full_sft", "rl"] * 2
    table = pair[pair.experiment == "tagged"]
    assert (table["n"] == 8).all()
    # every number is recomputed from the saved per-problem predictions, paired by problem id
    base = predictions(tiny_dag, "base", "tagged-chat")
    for row in table.itertuples():
        mine = predictions(tiny_dag, tiny_dag.run("tagged", row.stage), "tagged-chat")
        assert list(mine) == list(base)  # the same problems, in the same order
        assert row.accuracy_strict == pytest.approx(sum(r["correct_strict"] for r in mine.values()) / 8)
        assert row.answer_rate == pytest.approx(sum(r["has_answer"] for r in mine.values()) / 8)
        correct = sum(r["correct_strict"] for r in mine.values())
        assert (row.ci95_low, row.ci95_high) == pytest.approx(wilson_interval(correct, 8))
        if row.stage != "base":
            for column, field in (("p_strict_vs_base", "correct_strict"), ("p_answer_rate_vs_base", "has_answer")):
                paired = mcnemar_exact([base[i][field] for i in base], [mine[i][field] for i in base])
                assert getattr(row, column) == pytest.approx(paired["p_value"])
            parent_run = tiny_dag.run("tagged", PARENTS[row.stage])
            parent = predictions(tiny_dag, parent_run, "tagged-chat")
            paired = mcnemar_exact(*([run[i]["correct_strict"] for i in base] for run in (parent, mine)))
            assert row.p_strict_vs_parent == pytest.approx(paired["p_value"])
    per_example = pd.read_csv(tiny_dag.root / "results/report/per_example.csv", dtype=str, keep_default_na=False)
    prep = tiny_dag.run("tagged", "prep_sft")
    greedy = per_example[(per_example.run == prep) & (per_example.prompt == "tagged-chat")
                         & (per_example.testset == "test") & (per_example.decoding == "greedy")]
    saved = predictions(tiny_dag, prep, "tagged-chat")
    assert sorted(greedy["id"]) == sorted(saved)
    for r in greedy.itertuples():
        assert r.completion == saved[r.id]["completion"] and r.correct_strict == str(saved[r.id]["correct_strict"])
    # prep SFT teaches the tiny model the tagged format: answer rate rises from zero
    assert table.set_index("stage").loc["prep_sft", "answer_rate"] > table.set_index("stage").loc["base", "answer_rate"]
    page = (tiny_dag.root / "results/report/index.html").read_text()
    assert '<img src="accuracy.png"' in page and (tiny_dag.root / "results/report/accuracy.png").stat().st_size > 0
    assert "What is" in page  # completions of the same problems across stages


def test_sampling_curves_cover_the_base_model_and_every_trained_stage(tiny_dag):
    table = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    for n in (1, 2, 4):
        assert table[[f"maj@{n}", f"best@{n}", f"pass@{n}"]].notna().all().all()
    assert (table["pass@4"] >= table["pass@1"]).all()
    assert (tiny_dag.root / "results/report/sampling.png").stat().st_size > 0
    assert "Where a correct sample existed" in (tiny_dag.root / "results/report/index.html").read_text()


def test_grpo_had_reward_signal_and_logged_it(tiny_dag):
    training = {r["run"]: r for r in json.loads((tiny_dag.root / "results/report/training.json").read_text())}
    grpo = tiny_dag.run("tagged", "rl")
    assert training[grpo]["share_groups_with_reward_variance"] > 0
    history = json.loads((tiny_dag.root / f"results/{grpo}/log_history.json").read_text())
    assert any("rewards/format_reward/mean" in h for h in history)
    assert any("rewards/correctness_reward/mean" in h for h in history)


def test_every_job_wrote_a_log_and_a_benchmark(tiny_dag):
    benchmarks = list((tiny_dag.root / "results/benchmarks").rglob("*.tsv"))
    logs = list((tiny_dag.root / "results/logs").rglob("*.log"))
    # data, model, confidence targets, report; trainings: 3 + 3 (pair) + 2 raw_full + 3 raw_answer + 1 chat_binary
    # grpo + 1 distill; evaluations: base with 3 prompts, tagged's 3 stages x 2 templates, tagged_conf's 3, raw_full
    # 2 x 2, raw_answer 3 x 2, chat_binary's grpo x 2, distill 1
    assert len(benchmarks) == len(logs) == 4 + 13 + (3 + 6 + 3 + 4 + 6 + 2 + 1)


def test_a_finished_run_has_nothing_left_to_do(tiny_dag):
    assert tiny_dag.planned_jobs() == {}


def test_the_confidence_targets_vary_and_are_what_the_trainer_saw(tiny_dag):
    from gsm_pipeline.grading.answers import extract_confidence
    from gsm_pipeline.jobs.train_sft import build_trainer

    targets = tiny_dag.root / "results/confidence_targets/tagged-chat-conf.jsonl"
    summary = json.loads(targets.with_suffix(".summary.json").read_text())
    assert summary["correct"] > 0 and summary["distinct_targets"] >= 2
    job = SFTJob.parse(_shell_arg(tiny_dag, tiny_dag.run("tagged_conf", "prep_sft"), "--config"))
    trainer, tokenizer = build_trainer(job, str(tiny_dag.root / "resources/model"),
                                       str(tiny_dag.root / "results/data/prep_sft.jsonl"),
                                       tiny_dag.root / "scratch", confidence_targets=str(targets))
    seen = {extract_confidence(tokenizer.decode(ex["input_ids"])) for ex in trainer.train_dataset}
    assert None not in seen and len(seen) >= 2


def test_grpo_called_the_calibration_reward_and_it_varied(tiny_dag):
    grpo = tiny_dag.run("tagged_conf", "rl")
    history = json.loads((tiny_dag.root / f"results/{grpo}/log_history.json").read_text())
    means = [h["rewards/calibration_reward/mean"] for h in history if "rewards/calibration_reward/mean" in h]
    spreads = [h["rewards/calibration_reward/std"] for h in history if "rewards/calibration_reward/std" in h]
    assert means and all(-1.0 <= r <= 1.0 for r in means)
    # a constant reward teaches nothing: within some step the calibration reward took different values
    assert max(spreads) > 0 or len(set(means)) > 1
    assert not any("calibration" in k for h in json.loads(
        (tiny_dag.root / f"results/{tiny_dag.run('tagged', 'rl')}/log_history.json").read_text()) for k in h)


def test_every_confidence_stage_has_a_calibration_row_and_a_reliability_diagram(tiny_dag):
    table = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    conf = table[table.experiment == "tagged_conf"].set_index("stage")
    assert list(conf["prompt"]) == ["tagged-chat-conf"] * 4  # base too is asked for its confidence
    # each trained confidence stage states confidences (how many of the 8 problems varies with the CPU's float
    # kernels: 3 after full SFT on an AVX2-only EPYC, more with AVX-512), and the plain row never does (below)
    assert (conf.loc[["prep_sft", "full_sft", "rl"], "confidence_rate"] > 0).all()
    assert conf.loc[["prep_sft", "full_sft", "rl"], ["ece", "brier"]].notna().all().all()
    assert (table.loc[table.experiment == "tagged", "confidence_rate"] == 0).all()
    for run in (tiny_dag.run("tagged_conf", stage) for stage in ("base", "prep_sft", "rl")):
        bins = pd.read_csv(tiny_dag.root / f"results/{run}/eval/tagged-chat-conf/test/calibration.csv")
        assert list(bins.columns) == ["bin", "low", "high", "count", "mean_confidence", "accuracy"] and len(bins) == 10
    page = (tiny_dag.root / "results/report/index.html").read_text()
    assert "Did calibration training cost accuracy" in page and '<img src="calibration.png"' in page
    assert (tiny_dag.root / "results/report/calibration.png").stat().st_size > 0


def _shell_arg(dag, run, flag):
    """The value a job got for `flag`, read back from Snakemake's dry-run of that job."""
    import shlex

    out = dag.snakemake("-n", "-p", "--forcerun", run.split("-")[0], f"results/{run}/model").stdout
    line = next(line for line in out.splitlines() if "gsm_pipeline.jobs.train_sft" in line and run in line)
    words = shlex.split(line)
    return words[words.index(flag) + 1]


def test_changing_a_grpo_setting_replans_only_grpo_its_evaluation_and_the_report(tiny_dag):
    config = yaml.safe_load((tiny_dag.root / "tiny.yaml").read_text())
    changed = copy.deepcopy(config)
    changed["stages"]["rl"]["temperature"] = 0.7
    tiny_dag.write_config(changed, "changed.yaml")
    # every GRPO (tagged, tagged_conf, raw_answer, chat_binary) reads the setting; nothing upstream replans;
    # their evaluations: 2 + 1 + 2 + 2 (eval with and without the template)
    assert tiny_dag.planned_jobs("changed.yaml") == {"rl": 4, "evaluate": 7, "report": 1, "all": 1}


def test_changing_an_sft_setting_replans_that_stage_and_everything_downstream(tiny_dag):
    config = yaml.safe_load((tiny_dag.root / "tiny.yaml").read_text())
    changed = copy.deepcopy(config)
    changed["stages"]["full_sft"]["training_args"]["learning_rate"] = 1.0e-4
    tiny_dag.write_config(changed, "changed_sft.yaml")
    # full SFT of tagged, tagged_conf, raw_full, raw_answer, and the distill row's stage (tagged's full SFT teaches
    # it); evaluations 2 + 1 + 2 + 2 + 1
    assert tiny_dag.planned_jobs("changed_sft.yaml") == {"full_sft": 4, "distill": 1, "evaluate": 8, "report": 1,
                                                         "all": 1}


# What an edit of each library module replans in the tiny matrix (README "What reruns"), counted by hand.
# Trainings: prep 4 (tagged, tagged_conf, raw_full, raw_answer; chat_binary shares tagged's), full 4 (the same),
# GRPO 4 (tagged, tagged_conf, raw_answer, chat_binary), distill 1; evaluations 25: base with 3 prompts, tagged 3
# stages x 2 templates, tagged_conf 3, raw_full 2 x 2, raw_answer 3 x 2, chat_binary's GRPO x 2, distill 1.
EVERYTHING_TRAINED = {"prep_sft": 4, "full_sft": 4, "rl": 4, "distill": 1, "evaluate": 25, "report": 1, "all": 1}
RERUNS = {
    # grading: every evaluation, GRPO's rewards, the measured confidence targets and so the SFT of tagged_conf
    "grading/answers.py": {"confidence_targets": 1, "prep_sft": 1, "full_sft": 1, "rl": 4, "evaluate": 25,
                           "report": 1, "all": 1},
    # how answers are parsed: the same, and not plain SFT (it reads the formats' targets, not their readers)
    "grading/readers.py": {"confidence_targets": 1, "prep_sft": 1, "full_sft": 1, "rl": 4, "evaluate": 25,
                           "report": 1, "all": 1},
    # GRPO and the evaluations of its 4 models (2 + 1 + 2 + 2)
    "grading/rewards.py": {"rl": 4, "evaluate": 7, "report": 1, "all": 1},
    # every job that renders a prompt or a target; not the data, not the model
    "prompts.py": {"confidence_targets": 1, **EVERYTHING_TRAINED},
    "grading/formats.py": {"confidence_targets": 1, **EVERYTHING_TRAINED},
    # the sweep expansion and the config's descriptions run in Snakemake itself, in no job
    "matrix.py": {},
    "config.py": {},
    "experiment.py": {},
    "jobs/report.py": {"report": 1, "all": 1},
    "reporting/comparison.py": {"report": 1, "all": 1},
    "reporting/templates/report.html.j2": {"report": 1, "all": 1},
    # the configured task (tiny: jsonl) loads the rows: everything after the model download
    "tasks/jsonl.py": {"prepare_data": 1, "confidence_targets": 1, **EVERYTHING_TRAINED},
    "jobs/fetch_model.py": {"fetch_model": 1, "confidence_targets": 1, **EVERYTHING_TRAINED},
    # every evaluation computes its metrics, and the report its intervals; training and targets do not
    "grading/metrics.py": {"evaluate": 25, "report": 1, "all": 1},
    # the trainers (curve points, RL methods): every training, the targets sampled from tagged's prep model,
    # and every evaluation of a trained model (not the base's 3); the report also reads the methods' log keys
    "training/curve.py": {"confidence_targets": 1, "prep_sft": 4, "full_sft": 4, "rl": 4, "distill": 1,
                          "evaluate": 22, "report": 1, "all": 1},
    "training/methods.py": {"confidence_targets": 1, "prep_sft": 4, "full_sft": 4, "rl": 4, "distill": 1,
                            "evaluate": 22, "report": 1, "all": 1},
    # the stage kinds and stages: every training (so the targets sampled from tagged's prep model), every
    # evaluation of a trained model, the report; not the data (its splits are named in settings/data.py)
    "stages.py": {"confidence_targets": 1, "prep_sft": 4, "full_sft": 4, "rl": 4, "distill": 1, "evaluate": 22,
                  "report": 1, "all": 1},
    # the dry-run's own checks run in Snakemake, in no job
    "preflight.py": {},
}


@pytest.fixture(scope="module")
def edited_dag(tiny_dag, tmp_path_factory) -> Dag:
    """A copy of the tiny DAG to edit: the shared one is read by other test files' workers meanwhile."""
    return tiny_dag.copy(tmp_path_factory.mktemp("edited") / "dag")


@pytest.mark.parametrize("module", list(RERUNS))
def test_an_edit_of_a_library_module_replans_exactly_the_jobs_that_run_it(edited_dag, module):
    path = edited_dag.root / "workflow/gsm_pipeline" / module
    original = path.read_text()
    changed = original.replace('description="Answer format taught and asked for"',
                               'description="The answer format taught and asked for"') + "\n# an edit\n"
    assert changed != original
    path.write_text(changed)  # Snakemake compares checksums, so touching is not enough
    try:
        assert edited_dag.planned_jobs() == RERUNS[module]
    finally:
        path.write_text(original)
    assert edited_dag.planned_jobs() == {}


def test_one_stage_of_one_experiment_is_a_documented_target(tiny_dag):
    target = f"results/{tiny_dag.run('tagged', 'rl')}/model"
    assert tiny_dag.planned_jobs("tiny.yaml", target, "--forcerun", "rl") == {"rl": 1}
    asked = tiny_dag.snakemake("-n", "results/tagged/rl/model", check=False)  # by experiment name: told where
    assert asked.returncode != 0 and f"ask for {target}" in asked.stderr + asked.stdout


# --- the 10-cell chat-template matrix ---------------------------------------------------------------
CELLS = {("tagged", "full_sft"): "full_sft chat answer-loss", ("raw_full", "full_sft"): "full_sft raw full-loss",
         ("raw_answer", "full_sft"): "full_sft raw answer-loss", ("raw_answer", "rl"): "grpo raw",
         ("chat_binary", "rl"): "grpo chat"}


def test_the_chat_matrix_has_ten_cells_each_with_its_variant_columns(tiny_dag):
    table = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    cells = table[[(e, s) in CELLS for e, s in zip(table.experiment, table.stage)]]
    assert len(cells) == 10
    assert sorted(zip(cells.experiment, cells.stage, cells.eval_chat_template)) == sorted(
        (e, s, t) for e, s in CELLS for t in (True, False))
    for (exp, stage), method in CELLS.items():
        row = cells[(cells.experiment == exp) & (cells.stage == stage)].iloc[0]
        assert row["method"] == method
    assert set(cells.loc[cells.stage == "rl", "rewards"]) == {"binary"}
    assert set(cells.loc[cells.experiment == "raw_full", "completion_only_loss"]) == {False}
    for row in cells.itertuples():
        graded = predictions(tiny_dag, tiny_dag.run(row.experiment, row.stage), row.prompt)
        assert row.accuracy_strict == pytest.approx(sum(r["correct_strict"] for r in graded.values()) / len(graded))
    summary = json.loads((tiny_dag.root / "results/report/summary.json").read_text())
    assert summary["rows"] == len(table) and "test/rl" in summary["best_by_testset_and_stage"]


def test_a_raw_trained_model_asked_with_the_template_was_evaluated_with_the_template(tiny_dag):
    run = tiny_dag.run("raw_full", "full_sft")
    asked = tiny_dag.root / f"results/{run}/eval/tagged-chat/test/predictions.jsonl"
    metrics = json.loads((asked.parent / "metrics.json").read_text())
    assert metrics["prompt"]["chat_template"] is True and metrics["run"] == run
    raw = json.loads((tiny_dag.root / f"results/{run}/eval/tagged-raw/test/metrics.json").read_text())
    assert raw["prompt"]["chat_template"] is False


def test_binary_grpo_called_only_the_binary_reward(tiny_dag):
    grpo = tiny_dag.run("chat_binary", "rl")
    history = json.loads((tiny_dag.root / f"results/{grpo}/log_history.json").read_text())
    rewards = {k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")}
    assert rewards == {"rewards/binary_reward/mean"}


def test_the_report_shows_the_matrix_plots_and_states_each_sections_question(tiny_dag):
    report = tiny_dag.root / "results/report"
    page = (report / "index.html").read_text()
    for image in ("accuracy.png", "template_scatter.png", "training_curves.png", "calibration.png", "sampling.png",
                  "pass_at_k.png", "dynamics.png", "kl_at_evaluation.png"):
        assert f'<img src="{image}"' in page and (report / image).stat().st_size > 10_000, image
    # every section is headed by the question it answers; this matrix has something for each of them but
    # forgetting (no battery: the next test gives it one)
    assert [section.split("</h2>")[0] for section in page.split("<h2>")[1:]] == [
        "Which method buys more accuracy for the same compute?", "What did each stage do, per test set?",
        "Did each stage change accuracy and answer format?", "How do these numbers compare with published ones?",
        "Does the chat template matter at evaluation time?",
        "Did calibration training cost accuracy, and is the stated confidence informative?", "Does sampling help?",
        "Does training expand what the model can solve, or sharpen what it already could?",
        "How did training go?", "What happened during RL?", "What did training cost elsewhere?",
        "What do the completions look like?",
        "How was each job run?",
        "Which code, config and libraries produced these numbers?"]


def test_with_a_battery_the_page_sets_each_stages_gain_beside_what_it_lost(tiny_dag, tmp_path):
    """The report job given a battery (here the tiny DAG's one test set stands in for it, so each stage's
    forgetting is its gain negated): the figure, the table and forgetting.csv, one row per trained model."""
    from gsm_pipeline.jobs import report
    from gsm_pipeline.layout import report_job

    results = tiny_dag.root / "results"
    job = report_job(tiny_dag.config()).model_copy(update={"battery": ["test"]})
    report.main(["--metrics", *map(str, sorted(results.glob("**/eval/*/*/metrics.json"))),
                 "--logs", *map(str, sorted(results.glob("*/log_history.json"))), "--config", job.as_json(),
                 "--out", str(tmp_path), "--benchmarks", str(results / "benchmarks")])
    page = (tmp_path / "index.html").read_text()
    assert '<img src="forgetting.png"' in page and (tmp_path / "forgetting.png").stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "forgetting.csv")
    trained = {row.run for row in pd.read_csv(results / "report/comparison.csv").itertuples()
               if row.stage != "base" and row.eval_matches_training}
    assert len(table) == len(trained) and (table["forgetting"] == -table["gain"]).all()
    assert table["kl_from_base"].notna().all() and (table["kl_from_base"] > 0).all()


def report_section(dag, heading: str) -> str:
    page = (dag.root / "results/report/index.html").read_text()
    return page.split(f"<h2>{heading}</h2>")[1].split("<h2>")[0]


def html_table(section: str) -> list[dict[str, str]]:
    """The rows of the first table in `section`, as {header: cell text}."""
    from html import unescape

    table = section.split("<table>")[1].split("</table>")[0].replace("<wbr>", "")  # where a header may fold
    rows = [[unescape(cell.split(">", 1)[1]) for cell in row.replace("</th>", "</td>").split("</td>")[:-1]]
            for row in table.split("<tr>")[1:]]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def test_how_each_job_ran_is_shown_for_every_training_and_evaluation_from_its_own_record(tiny_dag):
    results = tiny_dag.root / "results"
    records = {f"train {path.parent.name}": json.loads(path.read_text())[0]["runtime"]
               for path in results.glob("*/log_history.json")}
    for path in results.glob("*/eval/*/*/metrics.json"):
        metrics = json.loads(path.read_text())
        records[f"evaluate {metrics['run']} {metrics['prompt_key']} {metrics['testset']}"] = metrics["runtime"]
    shown = {row["job"]: row for row in html_table(report_section(tiny_dag, "How was each job run?"))}
    assert shown.keys() == records.keys()
    for job, record in records.items():
        for column in ("device", "dtype", "autocast", "torch_threads", "cpu_capability", "engine", "distributed"):
            assert shown[job][column] == ("" if record.get(column) is None else str(record[column])), (job, column)
        assert shown[job]["processor"] == record["cpu"]
    assert {row["dtype"] for row in shown.values()} == {"float32"}  # the fixture asks for fp32 everywhere
    assert {records[job]["engine"] for job in records if "rl" in job and job.startswith("train")} == {"loop"}


def test_every_evaluation_shows_lm_evals_graders_beside_ours_and_where_they_differ(tiny_dag):
    from gsm_pipeline.grading import harness

    shown = {(row["run"], row["prompt"], row["testset"]): row
             for row in html_table(report_section(tiny_dag, "How do these numbers compare with published ones?"))}
    results = tiny_dag.root / "results"
    checked = 0
    for path in results.glob("*/eval/*/*/metrics.json"):
        metrics = json.loads(path.read_text())
        if "step" in metrics:
            continue  # learning-curve points are in the headline section
        predictions = [json.loads(line) for line in path.with_name("predictions.jsonl").open()]
        # each prediction carries lm-eval's own verdicts on its completion, against its gold answer
        assert [{k: p[k] for k in ("correct_lmeval_strict", "correct_lmeval_flexible")} for p in predictions] == [
            {k: v for k, v in g.items() if k.startswith("correct_")}
            for g in harness.grade([p["completion"] for p in predictions], [{**p, "answer": p["gold"]}
                                                                            for p in predictions])]
        row = shown[(metrics["run"], metrics["prompt_key"], metrics["testset"])]
        for theirs, ours in (("lmeval_strict", "strict"), ("lmeval_flexible", "flexible")):
            assert float(row[f"accuracy_{theirs}"]) == pytest.approx(metrics[f"accuracy_{theirs}"], abs=5e-4)
            differ = sum(p[f"correct_{theirs}"] != p[f"correct_{ours}"] for p in predictions)
            assert int(row[f"{theirs}_differs_from_ours"]) == differ
        checked += 1
    assert checked == len(shown) > 0


def test_the_report_names_the_config_seed_and_library_versions_that_produced_it(tiny_dag):
    from html import unescape
    from importlib.metadata import version

    from gsm_pipeline.hashing import config_hash

    section = report_section(tiny_dag, "Which code, config and libraries produced these numbers?")
    provenance = json.loads(unescape(section.split("<pre>")[1].split("</pre>")[0]))
    config = tiny_dag.config()
    assert provenance["seed"] == config.seed
    assert provenance["config_hash"] == config_hash(config.model_dump())
    for library in ("torch", "transformers", "trl", "accelerate", "snakemake"):
        assert provenance["versions"][library] == version(library), library


def test_the_confidence_targets_sampling_is_charged_once_to_the_chain_that_trains_on_them(tiny_dag):
    import csv

    summary = json.loads((tiny_dag.root / "results/confidence_targets/tagged-chat-conf.summary.json").read_text())
    tokens = summary["generated_tokens"]
    assert tokens > 0
    prep = tiny_dag.run("tagged_conf", "prep_sft")
    runtime = json.loads((tiny_dag.root / f"results/{prep}/log_history.json").read_text())[0]["runtime"]
    assert runtime["confidence_targets"] == {"name": "tagged-chat-conf", "generated_tokens": tokens}
    assert runtime["peak_gpu_memory_gb"] is None  # a CPU job has no GPU peak to report, and none is made up
    with open(tiny_dag.root / "results/report/curve.csv") as handle:
        curve = list(csv.DictReader(handle))
    points = {p["stage"]: p for p in curve if p["experiment"] == "tagged_conf"}
    # SFT generates nothing itself: prep SFT carries the targets' tokens, full SFT (its child) not a second time
    assert float(points["prep_sft"]["generated_tokens"]) == float(points["full_sft"]["generated_tokens"]) == tokens
    assert float(points["rl"]["generated_tokens"]) > tokens  # GRPO (from prep SFT) adds its rollouts
    plain = {p["stage"]: p for p in curve if p["experiment"] == "tagged"}
    assert float(plain["full_sft"]["generated_tokens"]) == 0  # the row without confidence pays nothing
    with open(tiny_dag.root / "results/report/cost.csv") as handle:
        costs = {c["run"]: c for c in csv.DictReader(handle)}
    assert float(costs[prep]["target_tokens"]) == tokens and costs[prep]["peak_gpu_memory_gb"] == ""
    seconds = {name: float(benchmark_row(tiny_dag.root / f"results/benchmarks/{name}.tsv")["s"])
               for name in (prep, "confidence_targets/tagged-chat-conf")}
    assert float(costs[prep]["wall_s"]) == seconds[prep]  # the stage's own job, as Snakemake measured it
    assert float(points["prep_sft"]["wall_s"]) == pytest.approx(sum(seconds.values()))  # plus the targets job's


def test_snakemakes_own_report_holds_our_table_page_and_figure_and_needs_no_cores(tiny_dag, tmp_path):
    import os
    import subprocess
    import zipfile

    env = {**os.environ, "PYTHONPATH": str(tiny_dag.root / "workflow")}
    done = subprocess.run(["snakemake", "--report", str(tmp_path / "report.zip"), "--configfile", "config.yaml",
                           "tiny.yaml"], cwd=tiny_dag.root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    for ours in ("comparison.csv", "index.html", "accuracy.png"):
        assert any(name.endswith(ours) for name in names), ours


def test_the_report_names_each_trained_model_by_its_rows_and_stage(tiny_dag):
    """The cost table and the RL legends say `tagged GRPO`, the config's names; the chain folder stays beside it
    only where a path is needed."""
    from gsm_pipeline.layout import report_job
    from gsm_pipeline.reporting.comparison import run_names

    costs = pd.read_csv(tiny_dag.root / "results/report/cost.csv")
    named = dict(zip(costs["run"], costs["trained"]))
    # the RL stage says what it optimised, as its own record states it (TRL 1.16's GRPO default loss is dapo)
    assert named[tiny_dag.run("tagged", "rl")] == "tagged GRPO (loss dapo, scale_rewards group, beta 0)"
    assert named[tiny_dag.run("tagged_conf", "prep_sft")].endswith("prep SFT")
    assert all(not name.split()[0].startswith(("prep_sft-", "rl-", "full_sft-")) for name in named.values())
    layouts = {e.name: e for e in report_job(tiny_dag.config()).experiments}
    histories = [(p.parent.name, json.loads(p.read_text())) for p in tiny_dag.root.glob("results/*/log_history.json")]
    assert run_names(layouts, histories) == named
    training = {r["run"]: r for r in json.loads((tiny_dag.root / "results/report/training.json").read_text())}
    assert training[tiny_dag.run("tagged", "rl")]["objective"] == "loss dapo, scale_rewards group, beta 0"


def test_the_distilled_model_is_evaluated_and_on_the_page_and_the_compute_axis(tiny_dag):
    """The distill row's stage trained from tagged's prep SFT, taught by tagged's full SFT (both shared), was
    evaluated, and the report names it and charges its samples, its teacher's passes and its teacher's training."""
    import csv

    run = tiny_dag.run("distill", "distill")
    assert tiny_dag.run("distill", "full_sft") == tiny_dag.run("tagged", "full_sft")
    runtime = json.loads((tiny_dag.root / f"results/{run}/log_history.json").read_text())[0]["runtime"]
    assert runtime["teacher"]["model"] == f"results/{tiny_dag.run('tagged', 'full_sft')}/model"
    with open(tiny_dag.root / "results/report/cost.csv") as handle:
        costs = {c["run"]: c for c in csv.DictReader(handle)}
    cost, teacher_cost = costs[run], costs[tiny_dag.run("tagged", "full_sft")]
    trained, generated = float(cost["trained_tokens"]), float(cost["generated_tokens"])
    n, teacher = int(cost["parameters"]), int(cost["teacher_parameters"])
    assert generated > 0 and teacher == runtime["teacher"]["parameters"] > 0
    assert float(cost["flops"]) == pytest.approx(6 * n * trained + 2 * n * generated + 2 * teacher * trained)
    with open(tiny_dag.root / "results/report/curve.csv") as handle:
        points = {p["stage"]: p for p in csv.DictReader(handle) if p["experiment"] == "distill"}
    # its parent's chain, its teacher's own training (full SFT, from the same prep SFT) once, and its own
    assert float(points["distill"]["flops"]) == pytest.approx(
        float(points["prep_sft"]["flops"]) + float(teacher_cost["flops"]) + float(cost["flops"]))
    rows = pd.read_csv(tiny_dag.root / "results/report/comparison.csv")
    [mine] = rows[(rows.experiment == "distill") & (rows.stage == "distill")].to_dict("records")
    assert mine["method"] == "distill chat" and mine["run"] == run
    assert "distill distillation" in (tiny_dag.root / "results/report/index.html").read_text()
