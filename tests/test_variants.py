"""Each variant of the experiment matrix changes what the trainer (or the evaluation) actually sees:
built through the real trainer builders on the tiny model, one variant at a time."""
import re

import pytest

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.errors import ConfigError, DataError
from gsm_pipeline.grading.formats import FORMATS
from gsm_pipeline.jobs import train_rl, train_sft
from gsm_pipeline.layout import model_dir
from gsm_pipeline.prompts import render_prompt
from gsm_pipeline.tasks.defaults import EXEMPLARS

STAGES = {"prep_sft": {"max_length": 256, "training_args": {"max_steps": 1}},
          "rl": {"num_generations": 2, "max_completion_length": 8,
                   "training_args": {"max_steps": 1, "per_device_train_batch_size": 2}}}


def rows_file(tmp_path, socratic=False):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in enumerate(arithmetic_rows(4, seed=5)):
        row = {"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
               "answer": r["answer"].rsplit(" ", 1)[1]}
        if socratic:
            row["reasoning_socratic"] = f"What is the sum? ** {row['reasoning']}"
        rows.append(row)
    return write_jsonl(tmp_path / "rows.jsonl", rows)


def config(**rows):
    return validate_config({"experiments": rows, "stages": STAGES})


def sft(tmp_path, tiny_model, cfg, name, socratic=False):
    rows = str(rows_file(tmp_path, socratic))
    return train_sft.build_trainer(cfg.stage_job(name, "prep_sft"), str(tiny_model), rows, tmp_path / "ckpt")


def grpo(tmp_path, tiny_model, cfg, name):
    return train_rl.build_trainer(cfg.stage_job(name, "rl"), str(tiny_model), str(rows_file(tmp_path)),
                                    tmp_path / "ckpt")


def completions(trainer, tokenizer):
    return [tokenizer.decode(ex["input_ids"]) for ex in trainer.train_dataset]


@pytest.mark.parametrize("fmt, marker", [("tagged", "<SOLUTION>"), ("gsm8k", "\n#### "), ("boxed", "\\boxed{")])
def test_the_answer_format_is_what_sft_teaches(tmp_path, tiny_model, fmt, marker):
    trainer, tokenizer = sft(tmp_path, tiny_model, config(x={"answer_format": fmt}), "x")
    text = completions(trainer, tokenizer)[0]
    assert marker in text and FORMATS[fmt].instruction in text


def test_lora_rows_train_an_adapter_with_their_own_rank_and_full_rows_do_not(tmp_path, tiny_model):
    from peft import PeftModel

    cfg = config(full={}, lora={"finetune": "lora", "lora": {"target_modules": ["q_proj", "v_proj"]},
                                "sweep": {"lora.r": [4, 8]}})
    assert not isinstance(sft(tmp_path / "f", tiny_model, cfg, "full")[0].model, PeftModel)
    trainer, _ = sft(tmp_path / "l", tiny_model, cfg, "lora-r8")
    assert isinstance(trainer.model, PeftModel)
    peft = trainer.model.peft_config["default"]
    assert peft.r == 8 and set(peft.target_modules) == {"q_proj", "v_proj"}


def test_socratic_rows_train_on_the_socratic_reasoning(tmp_path, tiny_model):
    cfg = validate_config({"data": {"source": "gsm8k"}, "stages": STAGES,
                           "experiments": {"main": {}, "soc": {"train_data": "socratic"}}})
    soc = completions(*sft(tmp_path / "s", tiny_model, cfg, "soc", socratic=True))
    main = completions(*sft(tmp_path / "m", tiny_model, cfg, "main", socratic=True))
    assert all("What is the sum? **" in t for t in soc) and not any("**" in t for t in main)
    with pytest.raises(DataError, match="row '0' has no reasoning_socratic"):
        sft(tmp_path / "n", tiny_model, cfg, "soc", socratic=False)


def test_socratic_needs_a_task_that_has_socratic_answers():
    with pytest.raises(ConfigError, match="experiments.s.train_data: socratic answers need a task that has them"):
        config(s={"train_data": "socratic"})


@pytest.mark.parametrize("rewards, called", [
    (["format", "correctness"], ["format_reward", "correctness_reward"]),
    (["binary"], ["binary_reward"]),
])
def test_the_reward_set_is_what_grpo_calls(tmp_path, tiny_model, rewards, called):
    trainer, _ = grpo(tmp_path, tiny_model, config(x={"rewards": rewards}), "x")
    assert [f.__name__ for f in trainer.reward_funcs] == called


@pytest.mark.parametrize("chat", [True, False])
def test_grpo_prompts_follow_the_training_template(tmp_path, tiny_model, chat):
    trainer, _ = grpo(tmp_path, tiny_model, config(x={"chat_template": chat}), "x")
    prompt = trainer.train_dataset[0]["prompt"]
    assert ("<|im_start|>assistant" in prompt) is chat and prompt.endswith("Answer:\n") is not chat


def test_grpo_starts_from_the_sft_model_the_row_names():
    cfg = config(a={}, b={"rl_from": "full_sft"})
    assert model_dir(cfg, "a", "prep_sft") == model_dir(cfg, "b", "prep_sft")  # shared
    assert re.fullmatch(r"results/prep_sft-[0-9a-f]{8}/model", model_dir(cfg, "a", "prep_sft"))
    assert cfg.stage_job("a", "rl") == cfg.stage_job("b", "rl")  # same job, different parent: a different stage
    assert model_dir(cfg, "a", "rl") != model_dir(cfg, "b", "rl")


def test_a_sweep_expands_into_rows_whose_trainers_get_the_swept_values(tmp_path, tiny_model):
    cfg = config(s={"sweep": {"seed": [1, 2], "overrides.prep_sft.training_args.learning_rate": [1e-3, 1e-2]}})
    assert list(cfg.experiments) == ["s-seed1-learning_rate0.001", "s-seed1-learning_rate0.01",
                                     "s-seed2-learning_rate0.001", "s-seed2-learning_rate0.01"]
    row = cfg.experiments["s-seed2-learning_rate0.001"]
    assert row.variant_of == "s" and row.swept == {"seed": 2, "overrides.prep_sft.training_args.learning_rate": 1e-3}
    trainer, _ = sft(tmp_path, tiny_model, cfg, "s-seed2-learning_rate0.001")
    assert trainer.args.seed == 2 and trainer.args.learning_rate == 1e-3
    assert trainer.args.max_steps == 1  # the rest of stages.prep_sft still applies


@pytest.mark.parametrize("raw, message", [
    ({"s": {"sweep": {"seed": []}}}, "key 'experiments.s.sweep': must map keys to non-empty lists"),
    ({"s": {"overrides": {"rl": {"temperatur": 1}}}}, "experiments.s.overrides.rl.temperatur: Extra inputs"),
    ({"s": {"lora": {"r": 0}}}, r"experiments.s.lora.r: Input should be greater than or equal to 1"),
])
def test_bad_sweeps_and_overrides_fail_in_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"experiments": raw})


@pytest.mark.parametrize("row, has_instruction, shots", [
    ({"instruction": False}, False, 0),                 # zero-shot
    ({"instruction": False, "shots": 1}, False, 1),     # one-shot
    ({}, True, 0),                                      # instruction
    ({"shots": 1}, True, 1),                            # one-shot + instruction
])
@pytest.mark.parametrize("chat", [True, False])
def test_prompting_baselines_render_their_examples_and_instruction(tiny_model, row, has_instruction, shots, chat):
    from transformers import AutoTokenizer

    cfg = config(b={"stages": [], "chat_template": chat, **row})
    text = render_prompt("What is 2 + 2?", cfg.prompt_spec("b"), AutoTokenizer.from_pretrained(tiny_model))
    assert (FORMATS["tagged"].instruction in text) is has_instruction
    assert (EXEMPLARS[0]["question"] in text) is bool(shots)
    assert text.count(f"<SOLUTION>{EXEMPLARS[0]['answer']}</SOLUTION>") == shots
    assert text.rstrip().endswith(("What is 2 + 2?\nAnswer:", "assistant"))


def test_eval_template_and_format_lists_cross_into_evaluation_prompts():
    cfg = config(x={"answer_format": "gsm8k", "eval_chat_template": [True, False],
                    "eval_answer_format": ["gsm8k", "boxed"]})
    assert sorted(cfg.prompts()) == ["boxed-chat", "boxed-raw", "gsm8k-chat", "gsm8k-raw"]
    assert cfg.prompt_key("x") == "gsm8k-chat"  # trained as declared; the rest are asked on purpose
