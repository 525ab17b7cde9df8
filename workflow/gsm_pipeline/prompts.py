"""Prompts and training targets. Training, GRPO and evaluation all render prompts here,
so the evaluation prompt is, by construction, the prefix the model was trained on."""
from __future__ import annotations

from typing import Any

INSTRUCTIONS = {
    "tagged": (
        "Solve the math problem. Write your step-by-step working out between <start_working_out> and "
        "<end_working_out>, then give only the final number between <SOLUTION> and </SOLUTION>."
    ),
    "gsm8k": "Solve the math problem step by step. End with a line '#### N' where N is the final number.",
    "boxed": "Solve the math problem step by step. Put the final number in \\boxed{}.",
}
# Generation stops at EOS, or as soon as the requested answer is closed.
STOP_STRINGS = {"tagged": ["</SOLUTION>"], "gsm8k": [], "boxed": []}


def render_prompt(question: str, spec: dict[str, Any], tokenizer) -> str:
    """The full prompt text given to the model (chat template applied when the spec says so)."""
    instruction = INSTRUCTIONS[spec["answer_format"]]
    if spec["chat_template"]:
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{instruction}\n\nQuestion: {question}\nAnswer:\n"


def render_target(reasoning: str, answer: str, spec: dict[str, Any]) -> str:
    """The completion SFT teaches (EOS is appended by the trainer)."""
    fmt = spec["answer_format"]
    if fmt == "tagged":
        return f"<start_working_out>{reasoning}<end_working_out><SOLUTION>{answer}</SOLUTION>"
    if fmt == "gsm8k":
        return f"{reasoning}\n#### {answer}"
    return f"{reasoning}\nThe final answer is \\boxed{{{answer}}}."
