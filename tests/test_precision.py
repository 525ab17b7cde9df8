"""Precision is the config's choice, resolved on the machine that runs the job, and every job says how it ran.

TRL's configs default to bf16 autocast and gradient checkpointing; on a CPU without native bf16 that default is
7-13x slower than fp32 (tests/bench/bench_precision.py). So the pipeline sets every numerics and speed field
itself, and `mixed_precision: auto` picks bf16 only where torch runs it natively.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, gsm_config, write_jsonl
from gsm_pipeline import runtime
from gsm_pipeline.config import validate_config
from gsm_pipeline.config_files import load_config_file, merge
from gsm_pipeline.errors import ConfigError
from gsm_pipeline.jobs import evaluate, train_rl, train_sft
from gsm_pipeline.runtime import resolve_precision, trainer_numerics
from gsm_pipeline.settings.evaluation import EvalJob
from gsm_pipeline.settings.training import SFTJob, TrainingJob
from gsm_pipeline.training.stage import trainer_arguments

PRESETS = sorted((REPO / "workflow/presets").glob("*-gsm8k.yaml"))


def default_config():
    """The GSM-style pair: its stages checkpoint gradients (the 6 GiB budget of 384-token rows)."""
    return validate_config(gsm_config())


def test_auto_chooses_bf16_only_on_a_cpu_that_runs_it_natively():
    native = resolve_precision("auto", gpu=False, native_bf16=True)
    emulated = resolve_precision("auto", gpu=False, native_bf16=False)
    assert (native.autocast, emulated.autocast) == ("bf16", None)
    assert "no native bf16" in emulated.reason and "natively" in native.reason
    assert resolve_precision("no", gpu=False, native_bf16=True).autocast is None


@pytest.mark.dag
def test_native_bf16_is_what_torch_will_run_not_what_cpuinfo_says():
    """Limited to the AVX2 kernels, a CPU with AVX-512 BF16 in /proc/cpuinfo runs bf16 emulated: auto says fp32."""
    code = ("import sys; sys.path.insert(0, 'workflow'); import torch; from gsm_pipeline import runtime; "
            "print(torch.backends.cpu.get_cpu_capability(), runtime.cpu_native_bf16(), "
            "runtime.resolve_precision('auto', gpu=False).autocast)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["AVX2", "False", "None"]


# What torch says on each kind of CPU (machine, ATen capability, oneDNN's bf16 answer, cpuinfo's AVX-512 BF16 and
# AMX flags, any ONEDNN_MAX_CPU_ISA limit) and whether `auto` may choose bf16 there. oneDNN answers yes on every
# AVX-512 core because it can *emulate* bf16 there: on a Cascade Lake that is 2.4x slower than fp32 for training.
CPU_KINDS = {
    "AMD EPYC Zen 4 (AVX-512 BF16)": (("x86_64", "AVX512", True, True, False, None), True),
    "Xeon Cascade Lake (AVX-512, no BF16, no AMX)": (("x86_64", "AVX512", True, False, False, None), False),
    "AVX2 only": (("x86_64", "AVX2", False, False, False, None), False),
    "AVX-512 BF16 limited to AVX2": (("x86_64", "AVX2", False, True, False, "AVX2"), False),
    "AVX-512 BF16, oneDNN limited to AVX512_CORE_VNNI": (("x86_64", "AVX512", True, True, False,
                                                          "AVX512_CORE_VNNI"), False),
    "Xeon Sapphire Rapids (AMX and AVX-512 BF16)": (("x86_64", "AVX512", True, True, True, None), True),
    "AMX, oneDNN limited to AVX512_CORE_AMX": (("x86_64", "AVX512", True, True, True, "avx512_core_amx"), True),
    "Arm with BF16 (Graviton3), ATen at its default kernels": (("aarch64", "DEFAULT", True, False, False, None), True),
    "Arm with BF16 and SVE kernels": (("aarch64", "SVE256", True, False, False, None), True),
    "Arm without BF16 (Graviton2)": (("aarch64", "DEFAULT", False, False, False, None), False),
}


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_auto_picks_bf16_only_where_the_cpu_executes_it_in_hardware_and_torch_may_use_it(kind, monkeypatch):
    import platform

    import torch

    (machine, capability, onednn, avx512_bf16, amx, isa_limit), native = CPU_KINDS[kind]
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if isa_limit:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_limit)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert runtime.cpu_native_bf16() is native
    chosen = resolve_precision("auto", gpu=False)
    assert chosen.autocast == ("bf16" if native else None)
    evidence = runtime.describe("float32", chosen)["cpu_bf16_evidence"]  # the record says what decided
    assert evidence["capability"] == capability and evidence["avx512_bf16"] is avx512_bf16


@pytest.mark.parametrize("variable", ["ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"])  # the older name counts too
def test_a_onednn_limit_below_bf16_keeps_auto_off_bf16_on_a_bf16_cpu(variable, monkeypatch):
    import platform

    import torch

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    assert runtime.cpu_native_bf16() is True
    monkeypatch.setenv(variable, "AVX512_CORE_VNNI")
    assert runtime.cpu_bf16() == (False, "oneDNN limited to AVX512_CORE_VNNI")


def test_bf16_asked_for_on_a_cpu_without_it_is_honoured_with_a_one_line_warning(capsys):
    runtime._WARNED.clear()
    chosen = resolve_precision("bf16", gpu=False, native_bf16=False)
    resolve_precision("bf16", gpu=False, native_bf16=False)
    assert chosen.autocast == "bf16" and "emulated" in chosen.reason
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "without native bf16" in warnings[0]


@pytest.mark.parametrize("bf16_gpu", [True, False])
def test_auto_on_a_gpu_follows_the_gpus_bf16_support(monkeypatch, bf16_gpu):
    """The GPU branch, which no CPU run reaches and the GPU proof (explicit bf16) does not either."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    chosen = resolve_precision("auto", gpu=True)
    assert chosen.autocast == ("bf16" if bf16_gpu else None)
    assert resolve_precision("fp16", gpu=True).autocast == "fp16" and resolve_precision("no", gpu=True).autocast is None
    if not bf16_gpu:
        with pytest.raises(ConfigError, match="bf16 asked for, but this GPU does not support it"):
            resolve_precision("bf16", gpu=True)


@pytest.mark.parametrize("capability, tf32", [((7, 0), False), ((8, 0), True), ((9, 0), True)])
def test_tf32_asked_for_is_used_only_on_ampere_and_newer(monkeypatch, capability, tf32):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    job = validate_config({"model": {"tf32": True}}).stage_job("tagged", "prep_sft")
    assert trainer_numerics(job, resolve_precision("no", gpu=False))["tf32"] is tf32  # a V100 (7.0) has none
    off = validate_config({}).stage_job("tagged", "prep_sft")
    assert trainer_numerics(off, resolve_precision("no", gpu=False))["tf32"] is False  # not asked for: never


def test_fp16_on_a_cpu_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^model.mixed_precision: fp16 needs a GPU"):
        resolve_precision("fp16", gpu=False, native_bf16=True)


@pytest.mark.parametrize("native", [False, True])
def test_trainers_built_from_the_default_config_follow_it_not_trl(tmp_path, tiny_model, monkeypatch, native):
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: (native, "patched"))
    cfg = default_config()
    rows = [{"id": str(i), "question": f"What is {i} + 1?", "reasoning": f"{i} + 1 = {i + 1}", "answer": str(i + 1)}
            for i in range(4)]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    sft, _ = train_sft.build_trainer(cfg.stage_job("tagged", "prep_sft"), str(tiny_model), str(data), tmp_path / "a")
    grpo, _ = train_rl.build_trainer(cfg.stage_job("tagged", "rl"), str(tiny_model), str(data), tmp_path / "b")
    for trainer in (sft, grpo):
        args = trainer.args
        assert (args.bf16, args.fp16) == (native, False)  # TRL would say bf16=True on every CPU
        assert args.gradient_checkpointing  # the GSM preset turns it on for every stage (the 6 GiB budget)
        assert not args.use_liger_kernel and not args.torch_compile
        assert args.use_cpu and not args.tf32
        assert trainer.model.dtype.__repr__() == "torch.float32"  # model.dtype: float32
    off = validate_config({"stages": {"rl": {"gradient_checkpointing": False}}}).stage_job("tagged", "rl")
    grpo, _ = train_rl.build_trainer(off, str(tiny_model), str(data), tmp_path / "c")
    assert not grpo.args.gradient_checkpointing  # the config's false, where TRL's default is true


def test_numerics_in_training_args_are_refused_naming_the_config_key():
    from trl import SFTConfig

    for key, owner in [("bf16", "model.mixed_precision"), ("fp16", "model.mixed_precision"), ("tf32", "model.tf32"),
                       ("gradient_checkpointing", "stages.full_sft.gradient_checkpointing"),
                       ("use_liger_kernel", "stages.full_sft.liger_kernel"),
                       ("torch_compile", "stages.full_sft.torch_compile")]:
        job = SFTJob(stage="full_sft", seed=0, prompt={}, training_args={key: True})  # built by hand: unchecked
        with pytest.raises(ConfigError, match=rf"training_args.{key}' is set by the pipeline: use {owner}$"):
            trainer_arguments(SFTConfig, job, "out")


def test_a_config_asking_for_bf16_on_a_cpu_trains_in_bf16(tmp_path, monkeypatch):
    from trl import SFTConfig

    monkeypatch.setattr(runtime, "cpu_bf16", lambda: (False, "patched"))
    cfg = validate_config({"model": {"mixed_precision": "bf16"},
                           "stages": {"full_sft": {"gradient_checkpointing": True}}})
    args = trainer_arguments(SFTConfig, cfg.stage_job("tagged", "full_sft"), tmp_path)
    assert args.bf16 and not args.fp16 and args.gradient_checkpointing


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_gpu_presets_ask_for_bf16_in_every_job(preset):
    overlay = load_config_file(preset)
    cfg = validate_config(merge(load_config_file(REPO / "config.yaml"), overlay))  # the workflow's own merge
    jobs = [cfg.stage_job(e, s) for e in cfg.experiments for s in ("prep_sft", "full_sft")]
    jobs += [cfg.stage_job(e, "rl") for e in cfg.experiments]
    jobs += [cfg.eval_job(p) for p in cfg.prompts().values()]
    jobs += [cfg.targets_job(cfg.prompt_spec(e)) for e in cfg.experiments]
    assert {j.mixed_precision for j in jobs} == {"bf16"} and {j.dtype for j in jobs} == {"bfloat16"}
    trained = [j for j in jobs if isinstance(j, TrainingJob)]
    for j in trained:  # gradient checkpointing only where the preset turns it on (TRL would turn it on everywhere)
        assert j.gradient_checkpointing == overlay["stages"][j.stage].get("gradient_checkpointing", False)
    assert trainer_numerics(trained[0], resolve_precision("bf16", gpu=False, native_bf16=True))["bf16"]


@pytest.mark.parametrize("dtype,mixed,autocast", [("bfloat16", "no", "none"), ("float32", "bf16", "bf16")])
def test_evaluation_runs_in_the_configured_dtype_and_records_how(tmp_path, tiny_model, dtype, mixed, autocast,
                                                                 monkeypatch):
    import torch

    generate, seen = evaluate.journaled_generate, []

    def recording(*args, **kwargs):  # generation itself runs under the autocast the record claims
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return generate(*args, **kwargs)

    monkeypatch.setattr(evaluate, "journaled_generate", recording)
    rows = [{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    job = EvalJob(prompt={"answer_format": "tagged", "chat_template": True, "confidence": False},
                  dtype=dtype, mixed_precision=mixed, max_new_tokens=4, batch_size=1)
    evaluate.main(["--model", str(tiny_model), "--data", str(data), "--config", job.as_json(),
                   "--out", str(tmp_path / "eval"), "--threads", "1"])
    ran = json.loads((tmp_path / "eval/metrics.json").read_text())["runtime"]
    assert (ran["weights"], ran["autocast"], ran["device"], ran["torch_threads"]) == (dtype, autocast, "cpu", 1)
    assert ran["cpu_capability"] and isinstance(ran["cpu_native_bf16"], bool) and ran["cpu"]
    assert seen and set(seen) == {torch.bfloat16 if autocast == "bf16" else None}


def test_a_training_job_states_how_it_ran_first_in_its_log_and_its_history(tmp_path, tiny_model, capfd):
    cfg = validate_config({"model": {"mixed_precision": "no"}, "stages": {"prep_sft": {
        "max_length": 128, "training_args": {"max_steps": 1, "per_device_train_batch_size": 2, "save_steps": 5}}}})
    rows = [{"id": str(i), "question": f"What is {i} + 1?", "reasoning": f"{i} + 1 = {i + 1}", "answer": str(i + 1)}
            for i in range(2)]
    train_sft.main(["--config", cfg.stage_job("tagged", "prep_sft").as_json(), "--parent", str(tiny_model),
                    "--data", str(write_jsonl(tmp_path / "rows.jsonl", rows)), "--out", str(tmp_path / "model"),
                    "--checkpoints", str(tmp_path / "ckpt"), "--log-history", str(tmp_path / "log.json"),
                    "--threads", "2"])
    first = [line for line in capfd.readouterr().err.splitlines() if line.startswith("runtime:")]
    assert len(first) == 1 and "capability" in first[0] and "autocast none" in first[0]
    head = json.loads(Path(tmp_path / "log.json").read_text())[0]["runtime"]
    assert (head["autocast"], head["weights"], head["gradient_checkpointing"], head["torch_threads"]) == (
        "none", "float32", False, 2)
    assert head["trainer_bf16"] is False and head["precision_reason"] == "asked for no"


def trained_share(tmp_path, parent, rows, name: str, **numerics) -> tuple[float, dict]:
    """Build the real SFT trainer for 3 steps at the RL presets' learning rate (1e-6), train, and return the
    share of its trained weights that moved, with the weights' dtype the trainer held."""
    job = SFTJob(stage="prep_sft", seed=0, prompt={}, max_length=128, **numerics,
                 training_args={"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-6,
                                "save_strategy": "no"})
    trainer, _ = train_sft.build_trainer(job, str(parent), str(rows), tmp_path / name)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    dtypes = {str(p.dtype) for p in trainer.model.parameters()}
    trainer.train()
    moved = sum(int((p.detach() != before[n]).sum()) for n, p in trainer.model.named_parameters())
    return moved / sum(p.numel() for p in before.values()), {"dtypes": dtypes}


def test_bf16_models_train_through_fp32_master_weights_so_small_updates_do_not_round_away(tmp_path, tiny_model):
    """A model stored in bfloat16 (the GPU presets' model.dtype) trained under bf16 autocast at a learning rate of
    1e-6 moves as many of its weights as the same stage in fp32: the trainer holds fp32 masters. Trained on the
    bf16 weights themselves, about 2% would move (a step near 0.02 is 1.2e-4 in bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parent = tmp_path / "bf16_parent"
    AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).save_pretrained(parent)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(parent)
    rows = [{"id": str(i), "question": f"What is {i} + 1?", "reasoning": f"{i} + 1 = {i + 1}", "answer": str(i + 1)}
            for i in range(8)]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    bf16, held = trained_share(tmp_path, parent, data, "bf16", dtype="bfloat16", mixed_precision="bf16")
    fp32, _ = trained_share(tmp_path, parent, data, "fp32", dtype="float32", mixed_precision="no")
    assert held["dtypes"] == {"torch.float32"}
    assert fp32 > 0.5  # Adam moves every weight a gradient reaches
    assert bf16 >= 0.95 * fp32, f"bf16-stored model: {bf16:.1%} of weights moved against {fp32:.1%} in fp32"

