"""The prompt spec: how a question is put to the model. Training, RL, confidence targets and evaluation all render
and grade through it, so its defaults live here once."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from ..grading.formats import FORMATS
from ..grading.protocols import PROTOCOLS, task_config
from ..tasks import DEFAULT_TASK, TASKS
from .base import Strict, registered


class PromptSpec(Strict, frozen=True):
    task: Annotated[str, registered(TASKS, "task")] = Field(
        DEFAULT_TASK, description="The task whose instructions, worked examples and grader apply")
    answer_format: Annotated[str, registered(FORMATS, "answer format")] = Field(
        "tagged", description="An entry of grading/formats.py's FORMATS")
    chat_template: bool = Field(True, description="Render through the tokenizer's chat template, or as plain text")
    confidence: bool = Field(False, description="Ask for a stated confidence after the answer")
    shots: int = Field(0, ge=0, description="Worked examples before the question")
    instruction: bool = Field(True, description="false: no format instruction")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="The template's own variables (e.g. enable_thinking); chat only")
    protocol: Annotated[str, registered(PROTOCOLS, "protocol")] | None = Field(
        None, description="An lm-evaluation-harness task (grading/harness.py) whose prompts, worked examples and "
                          "stop sequences replace all of the above but the task and answer format; evaluation only")

    @model_validator(mode="before")
    @classmethod
    def _variables_need_the_template(cls, data: Any) -> Any:
        """The template's own variables mean nothing without the template: a raw prompt carries none (so a row's
        kwargs never split the base evaluation of its raw prompts)."""
        if isinstance(data, dict) and data.get("chat_template") is False and data.get("chat_template_kwargs"):
            return {**data, "chat_template_kwargs": {}}
        return data

    @model_validator(mode="after")
    def _protocol_alone(self) -> PromptSpec:
        """A protocol is lm-eval's prompt as it is: a setting that would change it is a mistake, said at once."""
        if self.protocol is None:
            return self
        task_config(self.protocol)  # lm-eval installed and shipping the task, or a clear error now
        wanted = PROTOCOLS[self.protocol].answer_format
        if self.answer_format != wanted:
            raise ValueError(f"protocol {self.protocol} is graded in answer format {wanted!r}, not "
                             f"{self.answer_format!r}")
        changed = [key for key in ("chat_template", "confidence", "shots", "instruction", "chat_template_kwargs")
                   if getattr(self, key) != PROTOCOL_DEFAULTS[key]]
        if changed:
            raise ValueError(f"protocol {self.protocol} sets the whole prompt; {', '.join(changed)} cannot change it")
        return self

    @classmethod
    def protocol_spec(cls, task: str, protocol: str) -> PromptSpec:
        """The prompt of an lm-eval protocol on a task's rows."""
        return cls(task=task, protocol=protocol, answer_format=PROTOCOLS[protocol].answer_format,
                   **PROTOCOL_DEFAULTS)

    @classmethod
    def of(cls, spec: PromptSpec | dict[str, Any]) -> PromptSpec:
        """A spec, or the dict a job's settings or a test wrote it as."""
        return spec if isinstance(spec, cls) else cls.model_validate(spec)

    def but(self, **changes: Any) -> PromptSpec:
        """The same spec with some fields changed, validated again."""
        return PromptSpec.model_validate({**self.model_dump(), **changes})

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Settings at their defaults are left out, and template variables without a template: the dict stamps
        checkpoints and names chains, so a spec written before a field existed keeps its hash."""
        out = handler(self)
        for key in ("shots", "instruction", "protocol"):
            if out[key] == PromptSpec.model_fields[key].default:
                del out[key]
        if not (self.chat_template and self.chat_template_kwargs):
            del out["chat_template_kwargs"]
        return out


# What a protocol spec holds besides its task and format: lm-eval's plain-text prompt, nothing of this project's
PROTOCOL_DEFAULTS: dict[str, Any] = {"chat_template": False, "confidence": False, "shots": 0, "instruction": True,
                                     "chat_template_kwargs": {}}
