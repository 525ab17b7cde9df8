"""One row of the experiment matrix (`experiments.<name>`): what it trains, how it is prompted and evaluated, and
its overrides of the shared sections. Part of the pipeline config (config.py): read by Snakemake and
`gsm-pipeline validate` only; no job imports it."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .grading.formats import FORMATS
from .grading.protocols import PROTOCOLS
from .settings.base import SEED_MAX, Strict
from .settings.prompt import PromptSpec
from .settings.training import RewardName, RLName, registered_method
from .stages import DEFAULT_STAGES, RL_STAGE, STAGE_NAMES, STAGES, StageName

AnswerFormat = Literal[tuple(FORMATS)]  # the registry is the list of choices
ProtocolName = Literal[tuple(PROTOCOLS)]
# apply_chat_template's own parameters: the pipeline sets them, or they change what rendering returns
CHAT_TEMPLATE_ARGS = {"conversation", "tokenize", "add_generation_prompt", "continue_final_message", "return_dict",
                      "return_tensors", "padding", "truncation", "max_length", "chat_template", "tokenizer_kwargs",
                      "return_assistant_tokens_mask"}
PROMPT = {name: field.get_default(call_default_factory=True) for name, field in PromptSpec.model_fields.items()}


Samples = Annotated[int, Field(ge=0, le=64)]  # sampled completions per problem at an evaluation


class ExperimentConfig(Strict):
    answer_format: AnswerFormat = Field(PROMPT["answer_format"], description="Answer format taught and asked for")
    chat_template: bool = Field(PROMPT["chat_template"],
                                description="Render prompts with the tokenizer's chat template")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra arguments to the chat template, e.g. enable_thinking: false (Qwen3)")
    finetune: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA (merged after each stage)")
    completion_only_loss: bool = Field(True, description="SFT: mask the prompt out of the loss")
    rewards: list[RewardName] = Field(["format", "correctness"], description="The RL stage's reward functions")
    confidence: bool = Field(
        PROMPT["confidence"], description="Ask for a stated confidence <confidence>p</confidence> after the "
                                          "answer; SFT teaches it from the base model's measured accuracy (see the "
                                          "confidence section)")
    rl_from: Literal["prep_sft", "full_sft"] = Field("prep_sft", description="Which SFT model the RL stage starts from")
    rl: RLName = Field(
        "grpo", description="The RL method training the RL stage (stages.rl), one of training/methods.py's "
                            "registry: grpo (TRL's GRPOTrainer) or rloo (RLOOTrainer): same rewards, data and stage "
                            "settings; GRPO's loss variants are training_args loss_type and scale_rewards")
    stages: list[StageName] = Field(
        DEFAULT_STAGES, description=f"Stages to run for this experiment, of {', '.join(STAGE_NAMES)} (prep_sft is "
                                    "always needed by the others; [] evaluates the base model only: a prompting "
                                    "baseline)")
    train_data: Literal["main", "socratic"] = Field(
        "main", description="SFT reasoning style: GSM8K's main or socratic answers (socratic needs data.source "
                            "gsm8k)")
    shots: int = Field(PROMPT["shots"], ge=0, le=2,
                       description="Worked examples before the question (few-shot prompting)")
    instruction: bool = Field(PROMPT["instruction"],
                              description="Include the answer-format instruction in the prompt")
    eval_chat_template: list[bool] = Field(
        default_factory=list, description="Evaluate every stage with these chat_template values (default: as trained)")
    eval_answer_format: list[AnswerFormat] = Field(
        default_factory=list, description="Evaluate every stage asking for these formats (default: as trained)")
    eval_protocols: list[ProtocolName] = Field(
        default_factory=list, description="Also evaluate every stage under these lm-evaluation-harness protocols "
                                          "(lm-eval's own prompt, worked examples and stops; grading/protocols.py), "
                                          "e.g. [lm-eval-gsm8k]: numbers to set beside published ones")
    eval_samples: Samples | dict[StageName, Samples] | None = Field(
        None, description="Sampled completions per problem at this row's stages' final evaluations, or per stage "
                          "({prep_sft: 8}; a stage left out samples evaluation.samples) (default: "
                          "evaluation.samples; a stage folder shared by rows samples the most any of them asks), "
                          "e.g. 0 for seed and control rows read greedy")
    seed: int | None = Field(None, ge=0, le=SEED_MAX,
                             description="Training seed for this row (default: the top-level seed)")
    lora: dict[str, Any] = Field(default_factory=dict, description="Overrides of the top-level lora section")
    overrides: dict[StageName, dict[str, Any]] = Field(
        default_factory=dict, description="Per-stage overrides of the stages section for this row "
                                          "(training_args merged key by key)")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted keys of this row -> values; expands into one row per "
                                          "combination (e.g. seed: [0, 1]), named <row>-<key><value>")
    variant_of: str | None = Field(None, description="Set by sweep expansion: the row this one came from")
    swept: dict[str, Any] = Field(default_factory=dict, description="Set by sweep expansion: this row's values")

    @field_validator("rl")
    @classmethod
    def _registered_rl(cls, v: str) -> str:
        return registered_method(v)

    @field_validator("rewards")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one reward")
        return v

    @field_validator("stages", "rewards", "eval_chat_template", "eval_answer_format", "eval_protocols")
    @classmethod
    def _once_each(cls, v: list[Any]) -> list[Any]:
        """A value twice would run a stage twice into one folder, or weigh a reward double, without a word."""
        twice = next((x for i, x in enumerate(v) if x in v[:i]), None)
        if twice is not None:
            raise ValueError(f"{twice} is listed twice")
        return v

    @field_validator("chat_template_kwargs")
    @classmethod
    def _own_arguments(cls, v: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(set(v) & CHAT_TEMPLATE_ARGS)
        if taken:
            raise ValueError(f"{', '.join(taken)}: set by the pipeline when it renders prompts (allowed: the "
                             "template's own variables, e.g. enable_thinking)")
        return v

    @model_validator(mode="after")
    def _samples_of_its_stages(self) -> "ExperimentConfig":
        other = sorted(set(self.eval_samples) - set(self.stages)) if isinstance(self.eval_samples, dict) else []
        if other:
            raise ValueError(f"eval_samples: {', '.join(other)} is not a stage of this row "
                             f"(stages: {', '.join(self.stages)})")
        return self

    def samples_at(self, stage: str) -> int | None:
        """What this row asks its stage's final evaluation to sample (None: evaluation.samples)."""
        return self.eval_samples.get(stage) if isinstance(self.eval_samples, dict) else self.eval_samples

    @model_validator(mode="after")
    def _calibration_needs_confidence(self) -> "ExperimentConfig":
        if "calibration" in self.rewards and not self.confidence:
            raise ValueError("the calibration reward needs confidence: true")
        return self

    def parent_of(self, stage: str) -> str:
        """The stage a stage of this row starts from ("base" for the first): the table's, or rl_from for RL."""
        return self.rl_from if stage == RL_STAGE else STAGES[stage].parent

    def prompt_spec(self, task: str) -> PromptSpec:
        """The prompt this row trains with (and, by default, is evaluated with)."""
        return PromptSpec(task=task, answer_format=self.answer_format, chat_template=self.chat_template,
                          confidence=self.confidence, shots=self.shots, instruction=self.instruction,
                          chat_template_kwargs=self.chat_template_kwargs)

    def eval_specs(self, task: str) -> list[PromptSpec]:
        """Every prompt this row's stages are evaluated with: the training prompt crossed with the
        eval_answer_format and eval_chat_template lists (a mismatch on purpose shows in the report), then each
        lm-eval protocol's."""
        own = self.prompt_spec(task)
        return [own.but(answer_format=fmt, chat_template=chat)
                for fmt in self.eval_answer_format or [self.answer_format]
                for chat in self.eval_chat_template or [self.chat_template]] + \
            [PromptSpec.protocol_spec(task, protocol) for protocol in self.eval_protocols]
