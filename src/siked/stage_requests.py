"""The typed boundary between the loop and its heavy stages: one request model per stage kind.

The loop builds a `StageRequest`: the stage's name (`siked.names.StageName`), the config and its
kind's arguments (a `StageArgs` model), each validated as it is made. `siked.stages` writes it to
the stage's `request.json`; the worker (`siked.stage_worker`) reads it back through the same models,
validating it again, and answers with its kind's info record (`StageArgs[Info]`: what the manifest
keeps and `siked.metrics` reads). A new stage argument is one field of its kind's model here: the
loop sets it, the stage body reads it, and nothing between them changes.

request.json: {"stage": "iter1/train", "kind": "train", "config": {...}, "args": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from siked.config import CHECKED_BY_PARENT, SikedConfig
from siked.errors import SikedError, fields_message, one_line
from siked.io import write_json
from siked.metrics import EvalInfo, RoutingInfo, SampleInfo, StageInfo, TeacherInfo, TrainInfo
from siked.names import ModelName, StageName
from siked.plugins import load_plugins

Info = TypeVar("Info", bound=StageInfo)


class StageError(SikedError):
    """A stage's request, child process or result failed; the message names the stage."""


class StageArgs(BaseModel, Generic[Info]):
    """A stage kind's arguments; a subclass names its `kind` and, as its parameter, the info record
    its stage answers with: `class TrainArgs(StageArgs[TrainInfo])`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    """The registered stage body that runs it (`siked.stage_worker.stage_body`)."""
    info: ClassVar[type[StageInfo]] = StageInfo
    """What the stage answers with (set from the class's parameter)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for base in cls.__mro__:
            generic = getattr(base, "__pydantic_generic_metadata__", None) or {}
            if generic.get("origin") is StageArgs and generic.get("args"):
                cls.info = generic["args"][0]
                return


class TeachArgs(StageArgs[TeacherInfo]):
    kind: ClassVar[str] = "teach"
    problems: Path
    """JSONL of the training questions."""
    out_dir: Path
    """Where teacher.jsonl and teacher_stats.json go."""


class TrainArgs(StageArgs[TrainInfo]):
    kind: ClassVar[str] = "train"
    data: Path
    """The training mix: solutions JSONL."""
    questions: Path
    """The problems JSONL the solutions' questions are read from."""
    out_dir: Path
    previous: Path | None = None
    """The previous iteration's model (`train.init: previous`)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Overrides `train.max_steps` (a baseline under `loop.budget: equal_steps`)."""
    trainer_args: dict[str, Any] = {}
    """SFTConfig fields from the loop's tracking (report_to, run_name, logging_dir)."""
    snapshot_at: list[int] | None = None
    """Steps of loadable snapshots, besides every epoch's end (None: no snapshots)."""


class EvalSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    problems: Path
    out: Path
    """Its graded outputs (JSONL)."""


class EvaluateArgs(StageArgs[EvalInfo]):
    """Greedy decoding of each set, the student choosing its strategy."""

    kind: ClassVar[str] = "evaluate"
    model: Path
    sets: dict[str, EvalSet]


class SampleArgs(StageArgs[SampleInfo]):
    """The student's samples of the training questions (`generation.samples` each), per `mixing.line`."""

    kind: ClassVar[str] = "sample"
    model: Path
    problems: Path
    solutions_out: Path
    verdicts_out: Path


class RouteArgs(StageArgs[RoutingInfo]):
    """Every set decoded with each strategy the student was taught, forced: the routing analysis of the chosen model."""

    kind: ClassVar[str] = "route"
    model: Path
    model_name: ModelName
    sets: dict[str, Path]
    """Problems JSONL per set key."""
    out: Path
    """routing.json"""


A = TypeVar("A", bound=StageArgs)


@dataclass(frozen=True)
class StageRequest(Generic[A]):
    """What a stage needs: its name, the config and its kind's arguments."""

    stage: StageName
    config: SikedConfig
    args: A

    @property
    def kind(self) -> str:
        return self.args.kind

    def to_json(self) -> dict[str, Any]:
        return {"stage": str(self.stage), "kind": self.kind, "config": self.config.model_dump(mode="json"),
                "args": self.args.model_dump(mode="json")}

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


def read_request(path: Path, kinds: dict[str, type[StageArgs]]) -> StageRequest:
    """The request at `path`, validated with the models of its kind (one of `kinds`); anything amiss
    is a `StageError` naming the stage and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        stage_text, kind, config, args = data["stage"], data["kind"], data["config"], data["args"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StageError(f"stage request {path} cannot be read: {exc}") from None
    try:
        stage = StageName.parse(stage_text)
    except ValidationError as exc:
        raise StageError(f"stage request {path}: stage {stage_text!r}: {fields_message(exc)}") from None
    if kind not in kinds:
        raise StageError(f"stage {stage}: unknown kind {kind!r} (known: {', '.join(kinds)})")
    load_plugins(config.get("plugins", []) if isinstance(config, dict) else [])  # validation looks their names up
    try:
        parsed = kinds[kind].model_validate(args)
    except ValidationError as exc:
        raise StageError(f"stage {stage}: {path} does not match the {kind} request: {fields_message(exc, 'args.')}") from None
    return StageRequest(stage=stage, config=SikedConfig.model_validate(config, context=CHECKED_BY_PARENT), args=parsed)


def write_result(path: Path, outputs: list[Path], info: StageInfo) -> None:
    write_json(path, {"outputs": [str(p) for p in outputs], "info": info.dump()})


def read_result(path: Path, request: StageRequest[StageArgs[Info]]) -> tuple[list[Path], Info]:
    """The outputs and the info record a stage's child left at `path`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Path(p) for p in data["outputs"]], request.args.info.read(data["info"])  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = fields_message(exc, "info.") if isinstance(exc, ValidationError) else one_line(exc)
        raise StageError(f"stage {request.stage}: its child exited cleanly but left no readable {path} "
                         f"({why})") from None
