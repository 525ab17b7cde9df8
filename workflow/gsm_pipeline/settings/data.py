"""What prepare_data reads: the data section, and the job built from it."""
from __future__ import annotations

from importlib import metadata
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..disk_cache import cached
from ..tasks import TASKS
from .base import NAME_PATTERN, SEED_MAX, JobSettings, Strict, is_name, registered


def check_generator(dataset: str, settings: dict[str, dict[str, Any]]) -> None:
    """reasoning-gym has `dataset` and its generator takes each of `settings` (named by their config key): refused
    at validation, not when prepare_data generates. Importing reasoning-gym's registry costs about a second, so
    each verdict is kept on disk per reasoning-gym version (and this module's text) for the next dry-run."""
    try:
        version = metadata.version("reasoning-gym")
    except metadata.PackageNotFoundError:
        version = None
    refusal = cached("reasoning_gym", version, __file__, [dataset, settings], lambda: _refusal(dataset, settings))
    if refusal:
        raise ValueError(refusal)


def _refusal(dataset: str, settings: dict[str, dict[str, Any]]) -> str | None:
    from reasoning_gym.factory import DATASETS

    if dataset not in DATASETS:
        import difflib

        close = difflib.get_close_matches(dataset, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"dataset: reasoning-gym has no {dataset!r}{hint}"
    config_cls = DATASETS[dataset][1]
    for key, values in settings.items():
        try:
            config_cls(**values, seed=0, size=1).validate()
        except (TypeError, ValueError, AssertionError) as exc:
            return f"{key}: {dataset} refuses {values}: {exc}"
    return None


class ReasoningGymConfig(Strict):
    """Any reasoning-gym dataset with numeric answers as the task (data.source: reasoning_gym), generated offline."""
    dataset: str = Field("chain_sum", description="A reasoning-gym dataset name (reasoning_gym.factory.DATASETS)")
    config: dict[str, Any] = Field(
        default_factory=lambda: {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2,
                                 "allow_negation": False},
        description="Its generator's settings (its difficulty knobs): what training and the rg_id test set draw from")
    harder: dict[str, Any] = Field(
        default_factory=lambda: {"min_terms": 2, "max_terms": 2, "min_digits": 3, "max_digits": 3,
                                 "allow_negation": False},
        description="Settings of the rg_harder test set (a difficulty never trained on); {} for no such set")

    def check(self) -> None:
        check_generator(self.dataset, {"config": self.config, **({"harder": self.harder} if self.harder else {})})


class BatteryTask(Strict):
    """A task no stage trains on, tested to see what training costs elsewhere (forgetting)."""
    dataset: str = Field(description="A reasoning-gym dataset name whose answers are numbers")
    config: dict[str, Any] = Field(default_factory=dict, description="Its generator's settings")


# The training splits, carved disjoint, each sized data.<split>_size: every stage of the stage table (stages.py)
# trains on one of them. Named here rather than read from the table, so editing a stage does not replan the data.
TRAINING_SPLITS = ("prep_sft", "full_sft", "rl")


class DataConfig(Strict):
    source: Annotated[str, registered(TASKS, "task")] = Field(
        "gsm_symbolic", description="The task (gsm_pipeline/tasks): gsm_symbolic (offline generator), gsm8k (hub "
                                    "or local copy) or jsonl files")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed for generation, shuffling and the held-out template draw")
    gsm8k_hub_id: str = Field("openai/gsm8k", description="Hub dataset id, used when source is gsm8k")
    gsm8k_path: str | None = Field(None, description="Local folder with train.jsonl/test.jsonl instead of the hub")
    train_file: str | None = Field(None, description="JSONL of question/answer rows (source: jsonl)")
    test_file: str | None = Field(None, description="JSONL of question/answer rows (source: jsonl)")
    prep_sft_size: int = Field(64, ge=1, description="Rows in the small format-teaching SFT subset")
    full_sft_size: int = Field(256, ge=1, description="Rows in the full SFT set (disjoint from prep rows)")
    rl_size: int = Field(64, ge=1, description="Prompts of the RL stage (disjoint from the SFT rows)")
    test_size: int = Field(32, ge=1, description="Test problems per test set")
    heldout_template_fraction: float = Field(
        0.2, gt=0, lt=1, description="gsm_symbolic: share of templates kept out of training, tested apart")
    missing_answer: Literal["skip", "error"] = Field(
        "skip", description="A row whose answer has no final number: skip and count it, or fail")
    reasoning_gym: ReasoningGymConfig = Field(
        default_factory=ReasoningGymConfig, description="The reasoning-gym dataset when source is reasoning_gym")
    extra_test_files: dict[str, str] = Field(
        default_factory=dict, description="More test sets, name -> JSONL of question/answer rows "
                                          "(e.g. a local GSM8K test.jsonl as an out-of-distribution set)")
    battery: dict[str, BatteryTask] = Field(
        default_factory=dict, description="Tasks never trained on, name -> reasoning-gym dataset and settings: each "
                                          "is a test set, and a stage's change on them beside its gain on the "
                                          "trained task is its forgetting (any data.source; offline); null for "
                                          "none (an overlay's {} would merge into the default's)")

    @field_validator("battery", mode="before")
    @classmethod
    def _no_battery(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _files_for_jsonl(self) -> "DataConfig":
        if self.source == "jsonl" and not (self.train_file and self.test_file):
            raise ValueError("source 'jsonl' needs data.train_file and data.test_file")
        if self.source == "reasoning_gym":
            try:
                self.reasoning_gym.check()
            except ValueError as exc:
                raise ValueError(f"reasoning_gym.{exc}") from None
        # a file only another task reads would be ignored without a word, and the run train on other data
        for key, reader in (("train_file", "jsonl"), ("test_file", "jsonl"), ("gsm8k_path", "gsm8k")):
            if getattr(self, key) is not None and self.source != reader:
                raise ValueError(f"key 'data.{key}': read only by data.source {reader} (the source is "
                                 f"{self.source})")
        for key, names in (("extra_test_files", self.extra_test_files), ("battery", self.battery)):
            for name in names:
                if not is_name(name) or name in self.source_test_sets() or (
                        key == "battery" and name in self.extra_test_files):
                    raise ValueError(f"{key}: {name!r} must match {NAME_PATTERN} and not repeat another test set")
        for name, task in self.battery.items():
            try:
                check_generator(task.dataset, {"config": task.config})
            except ValueError as exc:
                raise ValueError(f"battery.{name}.{exc}") from None
        return self

    def source_test_sets(self) -> list[str]:
        from ..tasks import get_task

        return get_task(self.source).test_sets(self)

    def input_key(self, path: str) -> str:
        """The config key a local input file comes from (for messages naming it)."""
        named = {self.train_file: "train_file", self.test_file: "test_file",
                 **{file: f"extra_test_files.{name}" for name, file in self.extra_test_files.items()}}
        return f"data.{named.get(path, 'gsm8k_path')}"

    def test_sets(self) -> list[str]:
        """Names of every test set (the {testset} wildcard values)."""
        return self.source_test_sets() + list(self.battery) + sorted(self.extra_test_files)


class DataJob(DataConfig, JobSettings):
    socratic: bool = Field(False, description="Some row trains on socratic answers: the task loads them")
