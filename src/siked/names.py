"""The names of a run's models and stages, as types: `ModelName` (iter2, baselines/pot, a baseline's
snapshot baselines/pot/step-36) and `StageName` (teacher, iter2/train, baselines/pot/step-36/eval).

Their text is the run directory's layout: the manifest's stage keys and the models' folders. siked
builds and reads names through these types only, so an iteration's number is a field, never cut out
of a string; in JSON (a stage request, a manifest key) a name is its text.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

RunStep = Literal["data", "teacher", "routing"]
"""A stage of the run as a whole."""
ModelStep = Literal["mix", "train", "eval", "sample"]
"""A stage of one model: its training mix, its training, its evaluation, its samples."""
Step = Literal[RunStep, ModelStep]
SNAPSHOTS = "snapshots"
"""The folder beside a trained model that holds its snapshots (`siked.student.snapshots`)."""

N = TypeVar("N", bound="Name")
MODEL_NAME = re.compile(r"^(?:iter(?P<iteration>[1-9][0-9]*)|baselines/(?P<baseline>[^/]+?)(?:/step-(?P<step>[0-9]+))?)$")


def snapshot_folder(step: int) -> str:
    """A snapshot's folder under its model's `snapshots/`."""
    return f"{SNAPSHOTS}/step-{step}"


class Name(BaseModel):
    """A name that reads and writes as its text (`parse`, `str`); hashable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return cls._fields_of(data) if isinstance(data, str) else data

    @classmethod
    def _fields_of(cls, text: str) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[N], text: str) -> N:
        """The name `text` spells; a ValueError (pydantic's ValidationError) says why it spells none."""
        return cls.model_validate(text)

    @model_serializer
    def _to_text(self) -> str:
        return str(self)


class ModelName(Name):
    """A model of the run: iteration `iteration`, or baseline `baseline` (at its snapshot `step`)."""

    iteration: int | None = Field(default=None, ge=1)
    baseline: str | None = Field(default=None, pattern=r"^[^/]+$")
    step: int | None = Field(default=None, ge=0)
    """A baseline's snapshot: the optimizer step it was written at."""

    @model_validator(mode="after")
    def _one_kind(self) -> ModelName:
        if (self.iteration is None) == (self.baseline is None):
            raise ValueError("a model name is an iteration or a baseline (give one of them)")
        if self.step is not None and self.baseline is None:
            raise ValueError("only a baseline has snapshots (step)")
        return self

    @classmethod
    def _fields_of(cls, text: str) -> dict[str, Any]:
        match = MODEL_NAME.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a model name (iter<N>, baselines/<method>, baselines/<method>/step-<S>)")
        return {key: value for key, value in match.groupdict().items() if value is not None}

    def __str__(self) -> str:
        if self.iteration is not None:
            return f"iter{self.iteration}"
        return f"baselines/{self.baseline}" + (f"/step-{self.step}" if self.step is not None else "")

    def __lt__(self, other: ModelName) -> bool:  # iter2 before iter10; iterations before baselines
        return self._order() < other._order()

    def _order(self) -> tuple[int, int, str, int]:
        if self.iteration is not None:
            return 0, self.iteration, "", -1
        return 1, 0, self.baseline or "", -1 if self.step is None else self.step

    def snapshot(self, step: int) -> ModelName:
        """This baseline's snapshot at optimizer step `step`."""
        return ModelName(baseline=self.baseline, step=step)

    def stage(self, step: ModelStep) -> StageName:
        return StageName(step=step, model=self)

    @property
    def is_snapshot(self) -> bool:
        return self.step is not None

    @property
    def weights(self) -> str:
        """Its trained model's folder in the run directory: iter2/model, baselines/pot/model/snapshots/step-36."""
        if self.step is not None:
            return f"baselines/{self.baseline}/model/{snapshot_folder(self.step)}"
        return f"{self}/model"


class StageName(Name):
    """A stage of the run (`step` alone: data, teacher, routing) or of one model (iter2/train)."""

    step: Step
    model: ModelName | None = None

    @model_validator(mode="after")
    def _model_if_needed(self) -> StageName:
        if (self.model is None) != (self.step in get_args(RunStep)):
            whose = "a model" if self.model is None else "the run as a whole"
            raise ValueError(f"stage {self.step!r} is not a stage of {whose}")
        return self

    @classmethod
    def _fields_of(cls, text: str) -> dict[str, Any]:
        model, _, step = text.rpartition("/")
        return {"step": step, "model": ModelName.parse(model)} if model else {"step": step}

    def __str__(self) -> str:
        return f"{self.model}/{self.step}" if self.model is not None else self.step


DATA = StageName(step="data")
TEACHER = StageName(step="teacher")
ROUTING = StageName(step="routing")
