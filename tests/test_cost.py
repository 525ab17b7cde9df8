"""`gsm-pipeline cost` counts each GPU job's work from the config as the jobs will do it, and prices it from the
throughput table: these hand counts are the specification. Tokens generated are counted at the budget, tokens
trained as prompt + completion at the task's mean lengths (tables.LENGTHS: GSM8K's prompt 123, reference answer
114; the default arithmetic's 15 and 6). A batch whose paged cache cannot fit the stated GPU is refused by the
dry-run, naming the key."""
import subprocess

import pytest

from conftest import REPO
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.cost.command import main
from gsm_pipeline.cost.estimate import model, paged_cache_gb
from gsm_pipeline.cost.plan import plan
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.preflight import planned_stages, preflight

QWEN = REPO / "workflow/presets/qwen2.5-0.5b-gsm8k.yaml"
QWEN3 = REPO / "workflow/presets/qwen3-4b-gsm8k.yaml"


def config(*files, **overlay):
    raw = {}
    for path in [REPO / "config.yaml", *files]:
        raw = merge(raw, load_config_file(str(path)))
    return validate_config(merge(raw, overlay))


def by_job(cfg, gpu=None):
    return {c.job: c for c in plan(cfg, gpu)}


def one(costs, prefix):
    """The first job whose output path starts with `prefix` (stage folders are named by chain hashes)."""
    return next(c for job, c in costs.items() if job.startswith(prefix))


def test_the_default_plan_counts_rows_steps_and_budgets_and_spends_no_gpu_hours():
    costs = by_job(config())
    assert one(costs, "results/prep_sft-").trained == 320 * (15 + 6)  # 320 rows x 1 epoch
    assert one(costs, "results/full_sft-").trained == 1280 * (15 + 6)
    rl = one(costs, "results/rl-")
    assert rl.completions == 40 * 16  # 40 steps x 16 completions (2 groups of 8)
    assert rl.generated == 40 * 16 * 12  # each at the 12-token budget
    assert rl.trained == 40 * 16 * (15 + 12)
    base = one(costs, "results/base/eval/")
    trained = one(costs, "results/prep_sft-").job + "/eval/"
    assert base.generated == 200 * (1 + 1) * 12  # greedy + the KL's reference sample, per problem
    assert one(costs, trained).generated == 200 * 12  # greedy only: the default draws no samples
    assert all(c.gpus == 0 and c.gpu_hours is None and c.memory_gb is None for c in costs.values())


def test_the_qwen_preset_counts_samples_where_they_are_read_and_rollouts_by_generation_round():
    costs = by_job(config(QWEN), "h100")
    rl = one(costs, "results/rl-")
    assert rl.completions == 500 * 32 * 4  # max_steps x per device x accumulation on one GPU
    assert rl.generated == 500 * 32 * 4 * 512
    assert one(costs, "results/confidence_targets/").generated == (500 + 5400) * 4 * 512  # prep+full rows x 4
    assert one(costs, "results/full_sft-").trained == 5400 * 2 * (123 + 114)  # 2 epochs of reference rows
    assert one(costs, "results/base/eval/").generated == 1319 * (1 + 64 + 1) * 512
    curve = next(c for job, c in costs.items() if "/step-" in job)
    assert curve.generated == 1319 * 512  # curve_samples: 0
    controls = [c for job, c in costs.items() if "/eval/" in job and c.generated == 1319 * 512
                and "/step-" not in job]
    assert len(controls) == 12  # the reward controls' prep SFT and RL (3 seeds x 3 rewards, prep shared) greedy


def test_an_evaluations_time_is_its_calls_prefill_and_kl_passes_at_the_table_rates():
    costs = by_job(config(QWEN), "h100")
    curve = next(c for job, c in costs.items() if "/step-" in job)
    # fast end: 1,319 requests in calls of 1,024 and 295; a call lasts max(512 steps x 15 ms, its tokens at 15k/s)
    calls = max(512 * 0.015, 1024 * 114 / 15000) + max(512 * 0.015, 295 * 114 / 15000)
    prefill = 1319 * 123 / 60000  # forward at 3x the 20k tok/s of training
    kl = 4 * 1319 * (123 + 114) / 60000  # two models, on its greedy answers and the base's samples
    start = 10 + 0.494 * 2 / 2.0  # imports and CUDA, then 0.99 GB of bf16 weights read at 2 GB/s
    base = 0.494 * 2 / 2.0  # the base model loaded for the KL
    assert curve.seconds.fast == pytest.approx(start + calls + prefill + base + kl)
    assert curve.gpu_hours.fast == pytest.approx(curve.seconds.fast / 3600)


def test_the_qwen_preset_costs_at_most_80_h100_hours_at_the_slow_end_of_every_rate():
    total = sum(c.gpu_hours.slow for c in plan(config(QWEN), "h100") if c.gpu_hours)
    assert 15 < total <= 80


def test_a_paged_cache_is_every_request_at_full_length_in_whole_pages():
    m = model("Qwen/Qwen3-4B", config(QWEN3), "h100")
    # ceil((123 + 768) / 256) = 4 pages of 256 tokens, 2 x 36 layers x 8 heads x 128 x 2 bytes per token
    assert paged_cache_gb(m, 256, 123, 768) == pytest.approx(256 * 4 * 256 * 147456 / 1e9)


def test_a_batch_whose_paged_cache_cannot_fit_the_stated_gpu_is_refused_naming_its_key():
    with pytest.raises(ConfigError) as caught:
        preflight(config(QWEN3, evaluation={"batch_size": 2048}))
    assert str(caught.value) == (
        "evaluation.batch_size: 2048 requests' paged KV cache at full length (286-token prompts, the longest, + 768 "
        "new tokens) takes 387 GB, which with the 8.0 GB of weights is more than 90% of the h100's 80 GB; at most "
        "338 fit")
    with pytest.raises(ConfigError, match=r"^confidence.batch_size: 1024 requests"):
        preflight(config(QWEN3, confidence={"batch_size": 1024}))
    preflight(config(QWEN3, gpu="h200", evaluation={"batch_size": 512}))  # 97 GB: fits the H200's 141 GB
    preflight(config(QWEN3, gpu=None, evaluation={"batch_size": 2048}))  # no GPU kind stated: nothing to check


def test_the_command_prints_each_job_and_the_plans_total_and_names_a_missing_gpu_kind():
    run = subprocess.run(["gsm-pipeline", "cost", "config.yaml", str(QWEN)], cwd=REPO, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("config.yaml + ") and "on h100 (80 GB): Qwen/Qwen2.5-0.5B-Instruct, 0.49B" in lines[0]
    assert sum(line.startswith("results/") for line in lines) == len(plan(config(QWEN), "h100"))
    assert any(line.startswith("total: ") and line.split()[2] == "GPU-hours" for line in lines)
    refused = subprocess.run(["gsm-pipeline", "cost", "config.yaml", str(QWEN), "--gpu", "a100"], cwd=REPO,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "invalid choice: 'a100'" in refused.stderr


def test_a_gpu_plan_without_a_gpu_kind_or_with_a_model_the_table_lacks_is_one_line_naming_the_key(tmp_path):
    unstated = tmp_path / "unstated.yaml"
    unstated.write_text("gpu: null\n")
    with pytest.raises(ConfigError, match=r"^gpu: the config's jobs ask for GPUs but name no GPU kind"):
        main([str(REPO / "config.yaml"), str(QWEN), str(unstated)])
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model: {source: someone/unknown-7b}\n")
    with pytest.raises(ConfigError, match=r"^model.source 'someone/unknown-7b': its size is not in the cost table"):
        main([str(REPO / "config.yaml"), str(QWEN), str(unknown)])


def test_a_local_model_folder_is_sized_from_its_own_config_and_weights(tiny_model):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from gsm_pipeline.cost.estimate import architecture

    arch, config = architecture(str(tiny_model)), AutoConfig.from_pretrained(tiny_model)
    loaded = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert arch.parameters == sum(p.numel() for p in loaded.parameters())  # tied embeddings counted once
    assert (arch.layers, arch.hidden, arch.vocab) == (config.num_hidden_layers, config.hidden_size, config.vocab_size)


def test_each_job_waits_for_what_its_rule_reads_and_the_longest_chain_is_the_plans_wall_time():
    from gsm_pipeline.cost.estimate import JobCost, Span, schedule

    costs = by_job(config(QWEN), "h100")
    targets = one(costs, "results/confidence_targets/")
    conf_prep = next(c for c in costs.values() if c.kind == "prep_sft" and targets.job in c.after)
    assert conf_prep.after == ["resources/model", targets.job]  # the base model and the row's confidence targets
    rl = next(c for c in costs.values() if c.kind == "rl" and conf_prep.job in c.after)
    evaluation = one(costs, rl.job + "/eval/")
    _, prompt, testset = evaluation.job.rsplit("/", 2)
    assert evaluation.after == [rl.job, f"results/base/eval/{prompt}/{testset}"]  # the KL reads the base's samples
    plan_ = [JobCost("a", "x", 1, seconds=Span(1, 10)), JobCost("b", "x", 1, seconds=Span(2, 20), after=["a"]),
             JobCost("c", "x", 1, seconds=Span(4, 5)), JobCost("d", "x", 1, seconds=Span(1, 1), after=["b", "c"])]
    assert schedule(plan_, 0) == (5, ["c", "d"]) and schedule(plan_, 1) == (31, ["a", "b", "d"])
    # on one GPU the jobs run one after another; on two, c runs beside a and b
    assert schedule(plan_, 1, slots=1)[0] == 36 and schedule(plan_, 1, slots=2)[0] == 31
    # a GPU freed by a job is kept for the next one ready, not given to one that must wait anyway
    wide = [JobCost("long", "x", 1, seconds=Span(1, 50)), JobCost("short", "x", 1, seconds=Span(1, 10)),
            JobCost("late", "x", 1, seconds=Span(1, 5), after=["long"]), JobCost("free", "x", 1, seconds=Span(1, 20))]
    assert schedule(wide, 1, slots=2) == (55, ["long", "late"])  # `free` runs on the GPU `short` leaves at 10


def test_distillation_counts_its_rollouts_the_teachers_forward_passes_and_the_teachers_download():
    from gsm_pipeline.cost.plan import downloads

    cfg = config(QWEN)
    distill = one(by_job(cfg, "h100"), "results/distill-")
    assert distill.generated == 200 * 16 * 2 * 512  # max_steps x per device x accumulation, one completion each
    # fast end, per generation round (one per step) of 32 completions: decode to the 512 budget at 15 ms a step,
    # prefill, training on 32 x (123 + 114) tokens at 20k tok/s, the 1.5B teacher's forward at 3 x 12k tok/s
    tokens = 32 * (123 + 114)
    per_round = 512 * 0.015 + 32 * 123 / 60000 + tokens / 20000 + tokens / 36000
    loads = 0.494 * 2 / 2.0 + 1.54 * 2 / 2.0  # the student's and the teacher's bf16 weights at 2 GB/s
    assert distill.seconds.fast == pytest.approx(10 + loads + 200 * per_round)  # 10 s: the job's start
    assert downloads(cfg, planned_stages(cfg)) == pytest.approx({"Qwen/Qwen2.5-0.5B-Instruct": 0.988,
                                                                  "Qwen/Qwen2.5-1.5B-Instruct": 3.08})


def test_a_stage_of_small_micro_batches_is_bound_by_its_kernel_launches_not_its_tokens():
    prep = one(by_job(config(stages={"prep_sft": {"gpus": 1}}), "h100"), "results/prep_sft-")
    # 10 micro-batches of 32 rows x 21 tokens: 6,720 tokens would take 0.34 s at 20k tok/s, but each micro-batch's
    # forward and backward is at least three launch-bound steps of 15 ms; after the start and 0.54 GB of fp32
    # weights read at 2 GB/s
    assert prep.seconds.fast == pytest.approx(10 + 0.538 / 2.0 + 10 * 3 * 0.015)


def test_a_job_starts_with_its_imports_its_weights_and_its_launchers_start_and_several_gpus_wait_for_each_other():
    from gsm_pipeline.cost.estimate import JobCost, Plan
    from gsm_pipeline.cost.tables import LENGTHS

    cfg = config(QWEN)
    p = Plan(cfg, "h100", LENGTHS["gsm8k"], model(cfg.model.source, cfg, "h100"))
    start = {(launcher, gpus): p.timed(JobCost("j", "x", gpus), lambda end: 0.0, launcher, gpus).seconds.fast
             for launcher, gpus in (("single", 1), ("zero3", 1), ("zero3", 8))}
    # 10 s of imports and CUDA, 0.99 GB of bf16 weights at 2 GB/s; DeepSpeed's 3 s; 8 processes' rendezvous 10 s
    assert start == pytest.approx({("single", 1): 10.494, ("zero3", 1): 13.494, ("zero3", 8): 23.494})


def test_packed_sft_counts_its_rows_by_epoch_or_its_steps_of_full_sequences():
    costs = by_job(config(stages={"prep_sft": {"training_args": {"packing": True}},
                                  "full_sft": {"training_args": {"packing": True, "max_steps": 10}}}))
    assert one(costs, "results/prep_sft-").trained == 320 * (15 + 6)  # every row once, however packed
    assert one(costs, "results/full_sft-").trained == 10 * 32 * 64  # 10 steps x 32 sequences of max_length 64


def test_rollouts_follow_trls_generation_schedule_and_its_extra_forward_pass():
    # num_iterations 2: TRL generates every 4 x 2 = 8 micro-batches, so 501 steps x 4 are 250.5 rounds: 251; and
    # its accumulation (4) is no multiple of 8, so TRL takes the old log-probabilities in a forward of their own
    rl = one(by_job(config(QWEN, stages={"rl": {"training_args": {"max_steps": 501, "num_iterations": 2}}}), "h100"),
             "results/rl-")
    assert rl.completions == 251 * 32 * 4
    tokens = 128 * (123 + 114)  # a round's completions at the reference length (the fast end)
    per_round = max(512 * 0.015, 128 * 512 / 15000) + 128 * 123 / 60000 + tokens * 2 / 20000 + tokens / 60000
    assert rl.seconds.fast == pytest.approx(10 + 0.494 * 2 / 2.0 + 251 * per_round)  # 10 s: the job's start


def test_a_jobs_peak_memory_is_its_largest_phase_not_their_sum():
    base = one(by_job(config(QWEN3), "h100"), "results/base/eval/")
    # the weights, then the largest of: a call's cache (256 requests x 5 pages of 256 tokens at 144 KiB), the
    # scorer's logits; the base draws no KL
    assert base.memory_gb == pytest.approx(4.02 * 2 + 256 * 5 * 256 * 147456 / 1e9)


def test_confidence_targets_sampled_by_a_stage_wait_for_it():
    from gsm_pipeline.layout import stage_run

    cfg = config(QWEN, confidence={"model": "tagged/prep_sft"})
    assert one(by_job(cfg), "results/confidence_targets/").after == [f"results/{stage_run(cfg, 'tagged', 'prep_sft')}"]


def test_its_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback():
    run = subprocess.run("gsm-pipeline cost config.yaml | head -1", shell=True, cwd=REPO, capture_output=True,
                         text=True)
    assert run.stdout.startswith("config.yaml on the CPU") and run.stderr == ""


def test_an_extra_test_file_is_counted_as_prepare_data_cuts_it_to_test_size(tmp_path):
    from gsm_pipeline.cost.estimate import problems_in

    path = tmp_path / "extra.jsonl"
    path.write_text("".join(f'{{"question": "q{i}", "answer": "{i}"}}\n' for i in range(5)))
    for size, problems in ((3, 3), (10, 5)):
        cfg = config(data={"test_size": size, "extra_test_files": {"extra": str(path)}})
        assert problems_in(cfg, "extra") == problems
        base = next(c for c in plan(cfg, None) if c.job.startswith("results/base/") and c.job.endswith("/extra"))
        assert base.generated == problems * (1 + 1) * 12  # greedy and the KL's reference sample, 12 tokens each


def test_a_bad_key_is_refused_naming_the_file_that_brought_it_before_anything_is_counted(tmp_path):
    bad = tmp_path / "overlay.yaml"
    bad.write_text("evaluation:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=f"^{bad}: unknown key 'evaluation.batch_sise'; did you mean 'batch_size'"):
        main([str(REPO / "config.yaml"), str(bad)])


def test_a_resumed_run_is_priced_by_what_is_left_its_finished_jobs_marked_done(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from gsm_pipeline.cost.estimate import schedule

    costs = plan(config(QWEN), "h100")
    base = next(c for c in costs if c.job.startswith("results/base/eval/"))
    # the prep SFT under the confidence targets: done, the longest chain still runs through it, at no cost
    prep = next(c for c in costs if c.job == schedule(costs, 1)[1][1])
    assert prep.job in schedule([replace(c, seconds=None) if c is prep else c for c in costs], 1)[1]
    monkeypatch.chdir(tmp_path)
    for c in (base, prep):  # the files these jobs write last
        (tmp_path / c.output).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / c.output).write_text("{}")
    main([str(REPO / "config.yaml"), str(QWEN)])
    out = capsys.readouterr().out
    done = [line.split()[0] for line in out.splitlines() if line.endswith("  done")]
    assert sorted(done) == sorted([base.job, prep.job])
    left = [sum(c.gpu_hours.at(end) for c in costs if c.gpu_hours and c not in (base, prep)) for end in (0, 1)]
    assert f"left to run: {left[0]:.2f}-{left[1]:.2f} GPU-hours (2 jobs done" in out
    chain = next(line for line in out.splitlines() if line.startswith("longest chain:"))
    assert base.job not in chain and prep.job not in chain
