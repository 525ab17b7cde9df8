"""What the SFT trainer actually sees: the evaluation prompt as prefix, the prompt masked
out of the loss (-100) unless configured otherwise, and EOS labelled so generation stops."""

import pytest

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.jobs.train_sft import build_trainer
from gsm_pipeline.prompts import render_prompt, render_target

CHAT = {"answer_format": "tagged", "chat_template": True}
RAW = {"answer_format": "gsm8k", "chat_template": False}


def sft_batch(tmp_path, tiny_model, **experiment):
    cfg = validate_config({"experiments": {"x": experiment},
                           "stages": {"prep_sft": {"max_length": 256, "training_args": {"max_steps": 1}}}})
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(4, seed=3))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    job = cfg.stage_job("x", "prep_sft")
    trainer, tokenizer = build_trainer(job, str(tiny_model), str(data), tmp_path / "ckpt")
    example = trainer.train_dataset[0]
    batch = trainer.data_collator([example])
    return rows[0], job.prompt, tokenizer, example, batch


@pytest.mark.parametrize("spec", [CHAT, RAW], ids=["chat", "raw"])
def test_evaluation_prompt_is_the_training_prompt_prefix(tmp_path, tiny_model, spec):
    row, prompt, tokenizer, example, _ = sft_batch(tmp_path, tiny_model, **spec)
    eval_prompt = render_prompt(row["question"], prompt, tokenizer)
    trained_text = tokenizer.decode(example["input_ids"])
    assert trained_text.startswith(eval_prompt)
    assert trained_text[len(eval_prompt):].startswith(render_target(row["reasoning"], row["answer"], prompt))
    if spec["chat_template"]:
        assert "<|im_start|>assistant\n" in eval_prompt
    else:
        assert "<|im_start|>" not in eval_prompt


def test_prompt_tokens_are_masked_and_eos_is_labelled(tmp_path, tiny_model):
    row, prompt, tokenizer, example, batch = sft_batch(tmp_path, tiny_model, **CHAT)
    labels, ids = batch["labels"][0].tolist(), batch["input_ids"][0].tolist()
    n_prompt = len(tokenizer(render_prompt(row["question"], prompt, tokenizer), add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and all(t != -100 for t in labels[n_prompt:])
    assert ids[-1] == tokenizer.eos_token_id and labels[-1] == tokenizer.eos_token_id


def test_full_sequence_loss_labels_the_prompt_too(tmp_path, tiny_model):
    _, _, tokenizer, _, batch = sft_batch(tmp_path, tiny_model, completion_only_loss=False, **CHAT)
    labels = batch["labels"][0].tolist()
    assert -100 not in labels and labels == batch["input_ids"][0].tolist()


def test_a_prompt_spec_stamps_only_what_differs_from_its_defaults_so_old_chains_keep_their_names():
    """A prompt spec names every chain folder through the job it stamps: a setting at its default is left out,
    and template variables count only with a template, so a spec written before a field existed keeps its hash."""
    from gsm_pipeline.settings.prompt import PromptSpec

    written = {"task": "gsm_symbolic", "answer_format": "tagged", "chat_template": True, "confidence": False}
    assert PromptSpec().model_dump() == written  # config.yaml's row defaults are the spec's
    assert PromptSpec.model_validate(written).model_dump() == written
    raw = PromptSpec(chat_template=False, chat_template_kwargs={"enable_thinking": False}, shots=2, instruction=False)
    assert raw.model_dump() == {**written, "chat_template": False, "shots": 2, "instruction": False}
    row = validate_config({"experiments": {"x": {"chat_template_kwargs": {"enable_thinking": False}}}})
    assert row.prompt_spec("x").model_dump() == {**written, "chat_template_kwargs": {"enable_thinking": False}}


def test_a_raw_prompt_carries_no_template_variables_so_raw_rows_share_their_base_evaluation():
    from gsm_pipeline.settings.prompt import PromptSpec

    cfg = validate_config({"experiments": {
        "qwen3": {"chat_template_kwargs": {"enable_thinking": False}, "eval_chat_template": [True, False]},
        "plain": {"chat_template": False}}})
    chat, raw = cfg.experiment("qwen3").eval_specs(cfg.data.source)
    assert chat.chat_template_kwargs == {"enable_thinking": False} and raw.chat_template_kwargs == {}
    assert raw == cfg.prompt_spec("plain").but(answer_format=raw.answer_format)
    assert PromptSpec(chat_template=False, chat_template_kwargs={"enable_thinking": False}) == \
        PromptSpec(chat_template=False)
