"""The pipeline's configuration: one pydantic model, the single source of truth.

config.yaml is validated against `PipelineConfig` before any job runs. Jobs never
receive the whole config: `stage_job`, `eval_job`, `targets_job` and `data_job` cut
out exactly the settings a job reads, as the typed job models of
`settings/`, so Snakemake's params tracking reruns a job only when something it
uses has changed. Only Snakemake imports this module; no job does.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from .cost.tables import GPUS
from .errors import ConfigError
from .experiment import AnswerFormat, ExperimentConfig  # noqa: F401  (AnswerFormat re-exported)
from .hashing import config_hash  # noqa: F401  (re-exported)
from .matrix import expand_sweeps
from .prompts import prompt_key
from .settings.base import NAME_PATTERN, SEED_MAX, Numerics, Strict, is_name
from .settings.data import DataConfig, DataJob
from .settings.evaluation import ConfidenceConfig, EvalConfig, EvalJob, EvalSettings, TargetsJob
from .settings.generation import GenerationConfig
from .settings.model import ModelConfig
from .settings.prompt import PromptSpec
from .settings.training import LoraConfig, TrainingJob
from .stages import RL_STAGE, STAGE_NAMES, STAGES
from .training.fields import check_training_args

# Keys of configs written when the RL stage was named after GRPO: refused, pointing at the new name.
RENAMED = {"grpo": "rl", "grpo_from": "rl_from", "grpo_size": "rl_size"}
ROW_RESOLVED = {"seed", "finetune", "lora"}  # row settings a job reads as `_training` resolves them

# One section per stage of the stage table (stages.py), in its order, of its kind's settings.
StagesConfig = create_model("StagesConfig", __base__=Strict, **{
    name: (st.entry.section_model(), Field(default_factory=st.entry.section_model(), description=st.description))
    for name, st in STAGES.items()})


class PipelineConfig(Strict):
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Training and sampling seed")
    gpu: Literal[tuple(GPUS)] | None = Field(
        None, description="The GPU kind the jobs run on: `gsm-pipeline cost` estimates with its rates, and the "
                          "dry-run refuses a generation batch whose paged cache cannot fit its memory (null: unstated)")
    data: DataConfig = Field(default_factory=DataConfig, description="Datasets")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings for finetune: lora")
    stages: StagesConfig = Field(default_factory=StagesConfig, description="Per-stage hyperparameters")
    evaluation: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation settings")
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="The generation engine of evaluation, confidence targets and the RL stage's rollouts")
    confidence: ConfidenceConfig = Field(
        default_factory=ConfidenceConfig, description="How SFT confidence targets are measured")
    experiments: dict[str, ExperimentConfig] = Field(
        default_factory=lambda: {"tagged": ExperimentConfig()}, description="The experiment matrix, one row a name")
    _runs: dict | None = PrivateAttr(default=None)  # layout.runs() caches its table here

    @field_validator("experiments", mode="before")
    @classmethod
    def _drop_removed(cls, v):
        """A preset removes a row it would inherit from config.yaml by naming it with no settings (`row: null`)."""
        return {name: row for name, row in v.items() if row is not None} if isinstance(v, dict) else v

    @field_validator("experiments")
    @classmethod
    def _names(cls, v: dict[str, ExperimentConfig]) -> dict[str, ExperimentConfig]:
        if not v:
            raise ValueError("needs at least one experiment")
        for name in v:
            if not is_name(name) or name == "base":
                raise ValueError(f"experiment name {name!r} must match {NAME_PATTERN} and not be 'base'")
        return v

    @model_validator(mode="after")
    def _confidence_model(self) -> "PipelineConfig":
        ref = self.confidence.model
        if ref == "base":
            return self
        name, _, stage = ref.partition("/")
        exp = self.experiments.get(name)
        if exp is None or stage not in exp.stages or exp.confidence:
            raise ValueError(f"confidence.model {ref!r} must be 'base' or '<experiment>/<stage>' of a declared "
                             "experiment without confidence that runs that stage")
        return self

    @model_validator(mode="after")
    def _inputs_exist(self) -> "PipelineConfig":
        """Every local file prepare_data reads exists now, not only when that job starts."""
        from .tasks import get_task

        data = self.data
        local = get_task(data.source).input_files(data, self.data_job().socratic)
        for path in [*local, *data.extra_test_files.values()]:
            if not Path(path).is_file():
                raise ValueError(f"key '{data.input_key(path)}': {path}: no such file")
        return self

    @model_validator(mode="after")
    def _row_settings(self) -> "PipelineConfig":
        from .tasks import get_task

        for name, exp in self.experiments.items():
            for stage in exp.overrides:  # an override of a stage the row never runs changes nothing, silently
                if stage not in exp.stages:
                    swept = [k for k in exp.swept if k.startswith(f"overrides.{stage}.")]
                    where = (f"experiments.{exp.variant_of}.sweep: {swept[0]}" if swept else
                             f"experiments.{exp.variant_of or name}.overrides.{stage}")
                    raise ValueError(f"{where}: the row does not run {stage} (its stages: "
                                     f"{', '.join(exp.stages) or 'none'})")
            if exp.train_data == "socratic" and not get_task(self.data.source).SOCRATIC:
                raise ValueError(f"experiments.{name}.train_data: socratic answers need a task that has them "
                                 f"(data.source gsm8k), not {self.data.source!r}")
            for stage in exp.overrides:
                self._checked(f"experiments.{name}.overrides.{stage}", type(getattr(self.stages, stage)),
                              self._merged(getattr(self.stages, stage).model_dump(), exp.overrides[stage]))
            if exp.lora:
                self._checked(f"experiments.{name}.lora", LoraConfig, {**self.lora.model_dump(), **exp.lora})
            for stage in exp.stages:  # what only the whole job can check (e.g. curves need full weights)
                try:
                    self.stage_job(name, stage)
                except ValidationError as exc:
                    msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"experiments.{name} ({stage}): {msg}") from None
            if RL_STAGE in exp.stages:
                self._reward_weights_fit(name, exp)
        self._sweeps_change_something()
        return self

    def _reward_weights_fit(self, name: str, exp: ExperimentConfig) -> None:
        """TRL refuses weights that do not match the rewards only when it builds the RL trainer, after SFT."""
        weights = self.stage_config(name, RL_STAGE)["training_args"].get("reward_weights")
        if isinstance(weights, list) and len(weights) != len(exp.rewards):
            own = "reward_weights" in exp.overrides.get(RL_STAGE, {}).get("training_args", {})
            where = f"experiments.{name}.overrides" if own else "stages"
            raise ValueError(f"{where}.{RL_STAGE}.training_args.reward_weights: {len(weights)} weight"
                             f"{'' if len(weights) == 1 else 's'} for the {len(exp.rewards)} rewards of "
                             f"experiments.{name} ({', '.join(exp.rewards)})")

    def _sweeps_change_something(self) -> None:
        """Two rows of one sweep that would train and evaluate exactly alike (a swept key no stage of the row reads,
        e.g. lora.r under finetune: full) are one experiment under two names."""
        import json

        seen: dict[str, str] = {}
        for name, exp in self.experiments.items():
            if not exp.variant_of:
                continue
            plan = json.dumps([exp.variant_of, [self.stage_job(name, st).stamp() for st in exp.stages],
                               [s.model_dump() for s in exp.eval_specs(self.data.source)]], sort_keys=True,
                              default=str)
            if plan in seen:
                other = self.experiments[seen[plan]]
                keys = [k for k in exp.swept if exp.swept[k] != other.swept.get(k)]
                raise ValueError(f"experiments.{exp.variant_of}.sweep: {', '.join(keys)} changes nothing rows "
                                 f"{seen[plan]} and {name} run")
            seen[plan] = name

    @staticmethod
    def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(override.get("training_args", {}), dict):
            return {**base, **override}  # not merged: the stage model then refuses it, naming the key
        args = {**base.get("training_args", {}), **override.get("training_args", {})}
        return {**base, **override, "training_args": args}

    @staticmethod
    def _checked(where: str, model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
        try:
            return model.model_validate(values).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"{where}{'.' + key if key else ''}: {err['msg'].removeprefix('Value error, ')}") from None

    @model_validator(mode="after")
    def _training_args(self) -> "PipelineConfig":
        """TRL's own field names, kinds and sane ranges, checked now rather than when each stage starts."""
        for stage in STAGE_NAMES:
            check_training_args(f"stages.{stage}", stage, getattr(self.stages, stage).training_args)
        for name, exp in self.experiments.items():
            for stage, override in exp.overrides.items():  # _row_settings has checked their shape
                check_training_args(f"experiments.{name}.overrides.{stage}", stage, override.get("training_args", {}),
                                    rl=exp.rl)
            if exp.rl != "grpo" and RL_STAGE in exp.stages:  # the shared section must suit this row's trainer too
                check_training_args(f"stages.{RL_STAGE} (experiments.{name}.rl: {exp.rl})", RL_STAGE,
                                    getattr(self.stages, RL_STAGE).training_args, rl=exp.rl)
        return self

    @model_validator(mode="after")
    def _stage_order(self) -> "PipelineConfig":
        """Every stage a stage starts from or reads (a teacher) is run by the row, and none needs itself."""
        for name, exp in self.experiments.items():
            needs = {stage: self.needs(name, stage) for stage in exp.stages}
            for stage, wanted in needs.items():
                for needed, why in wanted:
                    if needed not in needs:
                        raise ValueError(f"experiments.{name}.stages: {stage} needs {needed}{why}")
            for stage, wanted in needs.items():
                seen, todo = set(), [n for n, _ in wanted]
                while todo:
                    needed = todo.pop()
                    if needed == stage:
                        through = f" through {', '.join(sorted(seen))}" if seen else ""
                        raise ValueError(f"experiments.{name}: {stage} would need itself{through}")
                    if needed not in seen:
                        seen.add(needed)
                        todo += [n for n, _ in needs[needed]]
        return self

    def needs(self, name: str, stage: str) -> list[tuple[str, str]]:
        """The stages a stage of a row waits for: its parent, and any stage its job reads, with why."""
        parent = self.experiment(name).parent_of(stage)
        reads = [(other, f" (its {flag})") for flag, other in self.stage_job(name, stage).read_stages().items()]
        return ([] if parent == "base" else [(parent, "")]) + reads

    # --- what each job sees -------------------------------------------------
    def experiment(self, name: str) -> ExperimentConfig:
        if name not in self.experiments:
            raise ConfigError(f"unknown experiment {name!r}; declared: {', '.join(self.experiments)}")
        return self.experiments[name]

    def prompt_spec(self, name: str) -> PromptSpec:
        return self.experiment(name).prompt_spec(self.data.source)

    def prompt_key(self, name: str) -> str:
        """Name of the prompt a row trains with (its base evaluation is shared with every row using it)."""
        return prompt_key(self.prompt_spec(name))

    def stage_config(self, name: str, stage: str) -> dict[str, Any]:
        """The stages.<stage> section with this row's overrides merged in."""
        base = getattr(self.stages, stage).model_dump()
        override = self.experiment(name).overrides.get(stage)
        return self._checked(f"experiments.{name}.overrides.{stage}", type(getattr(self.stages, stage)),
                             self._merged(base, override)) if override else base

    def _training(self, name: str) -> dict[str, Any]:
        exp = self.experiment(name)
        lora = {**self.lora.model_dump(), **exp.lora} if exp.finetune == "lora" else None
        return {"seed": self.seed if exp.seed is None else exp.seed, "prompt": self.prompt_spec(name),
                "finetune": exp.finetune, "lora": lora, **self.numerics()}

    def numerics(self) -> dict[str, Any]:
        """Weights dtype and mixed precision, the same for every job (resolved on the machine that runs it)."""
        return self.model.model_dump(include=set(Numerics.model_fields))

    def stage_job(self, name: str, stage: str) -> TrainingJob:
        """The typed job that trains one stage of one row (its kind's job model, stages.py): the stage's section
        with the row's overrides, what every training job reads, the row's own settings the job names (e.g. rl,
        rewards, train_data) and, for a job that generates, the generation section."""
        model = STAGES[stage].entry.job_model()
        row = {key: value for key, value in self.experiment(name).model_dump().items()
               if key in model.model_fields and key not in ROW_RESOLVED}
        generation = self.generation.model_dump() if issubclass(model, GenerationConfig) else {}
        return model.model_validate({"stage": stage, **self._training(name), **row, **generation,
                                     **self.stage_config(name, stage)})

    def data_job(self) -> DataJob:
        """The data section, plus whether any row trains on socratic answers (the task then loads them)."""
        return DataJob.model_validate({**self.data.model_dump(), "socratic": any(
            e.train_data == "socratic" for e in self.experiments.values())})

    def targets_job(self, prompt: PromptSpec) -> TargetsJob:
        """The measured model answers in the prompt it knows: the confidence prompt without the confidence
        request for the base model, the reference experiment's own prompt otherwise."""
        ref = self.confidence.model
        asked = prompt.but(confidence=False) if ref == "base" else self.prompt_spec(ref.split("/")[0])
        return TargetsJob.model_validate({"prompt": asked, "seed": self.seed, **self.numerics(),
                                          **self.generation.model_dump(), **self.confidence.model_dump()})

    def eval_job(self, prompt: PromptSpec, samples: int | None = None) -> EvalJob:
        """An evaluation asked in `prompt`, sampling `samples` per problem (default: evaluation.samples;
        layout.eval_samples says how many each evaluated folder samples)."""
        section = self.evaluation.model_dump(include=set(EvalSettings.model_fields))  # the job's share of it
        return EvalJob.model_validate({"prompt": prompt, "seed": self.seed, **self.numerics(),
                                       **self.generation.model_dump(),
                                       **section, **({} if samples is None else {"samples": samples})})

    def prompts(self) -> dict[str, PromptSpec]:
        """Every distinct prompt, trained with or evaluated with, keyed by prompt_key (the {prompt} wildcard)."""
        specs = [s for exp in self.experiments.values()
                 for s in [exp.prompt_spec(self.data.source), *exp.eval_specs(self.data.source)]]
        return {prompt_key(s): s for s in specs}


def sibling_keys(loc: tuple) -> list[str]:
    """The keys allowed beside the last part of `loc` (for "did you mean"), walking the config model."""
    import typing

    model: Any = PipelineConfig
    keyed = False  # the next part is a mapping's key (an experiment's name), not a field
    for part in loc[:-1]:
        if keyed:
            keyed = False
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = fields[part].annotation
        while typing.get_origin(model) in (typing.Union, type(int | None)):
            model = next(a for a in typing.get_args(model) if a is not type(None))
        if typing.get_origin(model) is dict:
            model, keyed = typing.get_args(model)[1], True
    return list(getattr(model, "model_fields", {}))


def _location(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err["loc"]) or "<top level>"


def validate_config(raw: dict[str, Any]) -> PipelineConfig:
    """Validate a raw config dict (sweeps expanded first); raise ConfigError with one line naming the first
    bad key."""
    if isinstance(raw, dict) and isinstance(raw.get("experiments"), dict):
        raw = {**raw, "experiments": expand_sweeps(raw["experiments"])}
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _location(err)
        if not err["loc"]:  # a whole-config check: its message names the keys itself
            raise ConfigError(err["msg"].removeprefix("Value error, ")) from None
        if err["type"] == "extra_forbidden" and str(err["loc"][-1]) in RENAMED:
            new = where.rsplit(".", 1)[0] + "." + RENAMED[str(err["loc"][-1])] if len(err["loc"]) > 1 else \
                RENAMED[str(err["loc"][-1])]
            raise ConfigError(f"unknown key '{where}'; did you mean '{new}'? (the RL stage is named rl)") from None
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), sibling_keys(err["loc"]), n=1)
            raise ConfigError(f"unknown key '{where}'" + (f"; did you mean '{close[0]}'?" if close else "")) from None
        value, msg = err.get("input"), err["msg"].removeprefix("Value error, ")
        shown = "" if isinstance(value, dict) or str(value) in msg else f" (got {value!r})"
        hint = "; did you mean 'rl'? (the RL stage is named rl)" if value == "grpo" and \
            err["type"] == "literal_error" and "'rl'" in msg else ""
        raise ConfigError(f"key '{where}': {msg}{shown}{hint}") from None
