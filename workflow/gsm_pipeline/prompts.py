"""Prompts and training targets. Training, GRPO and evaluation all render prompts here,
so the evaluation prompt is, by construction, the prefix the model was trained on.

A prompt spec is a `settings.prompt.PromptSpec` (a dict is validated into one). `prompt_key` names a spec
in result paths. A spec with a `protocol` is lm-evaluation-harness's prompt, which lm-eval itself renders
(grading/harness.py, evaluation only): its worked examples depend on each row's place in the test set.
"""
from __future__ import annotations

import hashlib
import json

from .grading import protocols
from .grading.formats import FORMATS
from .settings.prompt import PromptSpec
from .tasks import get_task

CONFIDENCE_INSTRUCTION = (
    " After the answer, state the probability that your answer is correct as a number between 0 and 1 "
    "between <confidence> and </confidence>."
)


def prompt_key(spec: PromptSpec | dict) -> str:
    """`<format>-<chat|raw>[-conf][-<n>shot][-noinst][-<hash of chat kwargs>]`; the task is not in the key
    (one config has one task)."""
    spec = PromptSpec.of(spec)
    if spec.protocol:
        return spec.protocol
    key = f"{spec.answer_format}-{'chat' if spec.chat_template else 'raw'}"
    key += "-conf" if spec.confidence else ""
    key += f"-{spec.shots}shot" if spec.shots else ""
    key += "" if spec.instruction else "-noinst"
    if spec.chat_template and spec.chat_template_kwargs:  # another rendering: its own evaluation
        key += "-" + hashlib.sha256(json.dumps(spec.chat_template_kwargs, sort_keys=True).encode()).hexdigest()[:6]
    return key


def stop_strings(spec: PromptSpec | dict) -> list[str]:
    """Generation stops at EOS, or as soon as the requested answer (or the confidence after it) is closed."""
    spec = PromptSpec.of(spec)
    if spec.protocol:
        return protocols.stop_strings(spec.protocol)
    stops = ["</confidence>"] if spec.confidence else list(FORMATS[spec.answer_format].stop)
    if spec.shots and not spec.chat_template:
        stops.append("\nQuestion:")  # a raw few-shot model goes on to write the next example
    return stops


def instruction_text(spec: PromptSpec | dict) -> str:
    spec = PromptSpec.of(spec)
    if not spec.instruction:
        return ""
    fmt = spec.answer_format
    text = get_task(spec.task).INSTRUCTIONS.get(fmt, FORMATS[fmt].instruction)
    return text + (CONFIDENCE_INSTRUCTION if spec.confidence else "")


def render_prompt(question: str, spec: PromptSpec | dict, tokenizer) -> str:
    """The full prompt text given to the model (chat template applied when the spec says so)."""
    spec = PromptSpec.of(spec)
    if spec.protocol:
        raise ValueError(f"{spec.protocol}: a protocol's prompts depend on the whole test set; use "
                         "jobs.evaluate.prompts_for")
    instruction = instruction_text(spec)
    shown = spec.but(confidence=False)  # worked examples show the answer format, not a made-up confidence
    shots = [(ex["question"], render_target(ex["reasoning"], ex["answer"], shown))
             for ex in get_task(spec.task).EXEMPLARS[: spec.shots]]
    if spec.chat_template:
        messages = [{"role": "system", "content": instruction}] if instruction else []
        for q, a in shots:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **spec.chat_template_kwargs)
    head = f"{instruction}\n\n" if instruction else ""
    return head + "".join(f"Question: {q}\nAnswer:\n{a}\n\n" for q, a in shots) + f"Question: {question}\nAnswer:\n"


def render_target(reasoning: str, answer: str, spec: PromptSpec | dict, confidence: float | None = None) -> str:
    """The completion SFT teaches (EOS is appended by the trainer); with confidence on, the stated
    confidence follows the answer."""
    spec = PromptSpec.of(spec)
    fmt = FORMATS[spec.answer_format]
    text = fmt.target.format(reasoning=reasoning, answer=answer)
    if not spec.confidence:
        return text
    if confidence is None:
        raise ValueError("a confidence target is needed when the prompt asks for confidence")
    return f"{text}{fmt.confidence_separator}<confidence>{confidence:.2f}</confidence>"
