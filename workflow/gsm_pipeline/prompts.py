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
CONFIDENCE_INSTRUCTION = (
    " After the answer, state the probability that your answer is correct as a number between 0 and 1 "
    "between <confidence> and </confidence>."
)
# Generation stops at EOS, or as soon as the requested answer (or the confidence after it) is closed.
STOP_STRINGS = {"tagged": ["</SOLUTION>"], "gsm8k": [], "boxed": []}


def stop_strings(spec: dict[str, Any]) -> list[str]:
    return ["</confidence>"] if spec.get("confidence") else STOP_STRINGS[spec["answer_format"]]


def render_prompt(question: str, spec: dict[str, Any], tokenizer) -> str:
    """The full prompt text given to the model (chat template applied when the spec says so)."""
    instruction = INSTRUCTIONS[spec["answer_format"]] + (CONFIDENCE_INSTRUCTION if spec.get("confidence") else "")
    if spec["chat_template"]:
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **spec.get("chat_template_kwargs", {}))
    return f"{instruction}\n\nQuestion: {question}\nAnswer:\n"


def render_target(reasoning: str, answer: str, spec: dict[str, Any], confidence: float | None = None) -> str:
    """The completion SFT teaches (EOS is appended by the trainer); with confidence on, the stated
    confidence follows the answer."""
    fmt = spec["answer_format"]
    if fmt == "tagged":
        text = f"<start_working_out>{reasoning}<end_working_out><SOLUTION>{answer}</SOLUTION>"
    elif fmt == "gsm8k":
        text = f"{reasoning}\n#### {answer}"
    else:
        text = f"{reasoning}\nThe final answer is \\boxed{{{answer}}}."
    if not spec.get("confidence"):
        return text
    if confidence is None:
        raise ValueError("a confidence target is needed when the prompt asks for confidence")
    separator = "" if fmt == "tagged" else "\n"
    return f"{text}{separator}<confidence>{confidence:.2f}</confidence>"
