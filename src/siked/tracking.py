"""Experiment tracking: the trainer's own per-step logs and the loop's per-iteration metrics.

`tracking.report_to` names the trackers (tensorboard, wandb, trackio). Each training stage is one
tracker run made by the transformers `report_to` callbacks, named `<run>/<stage>` and grouped
under the siked run; the loop's metrics go to one more run, `<run>/loop`, with the iteration as
its x-axis. TensorBoard writes under `RUN/tracking/<stage>` and `RUN/tracking/loop`; W&B keeps its
files under `RUN/tracking/wandb` (offline with `WANDB_MODE=offline`); Trackio uses its own store.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from siked.errors import SikedError
from siked.metrics import Iteration, TeacherStats, TrainStats

TRACKERS: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
"""Tracker name -> the module it needs (installed by the `siked[tracking]` extra)."""

EXTRA = "pip install 'siked[tracking]'"


class TrackingError(SikedError, ValueError):
    """A tracker that cannot be used; the message names it and what to install."""


def enabled(report_to: list[str]) -> list[str]:
    return [name for name in report_to if name != "none"]


def check_installed(report_to: list[str]) -> None:
    """Fail before any work when a configured tracker's library is missing."""
    for name in enabled(report_to):
        if name not in TRACKERS:
            raise TrackingError(f"tracking.report_to: unknown tracker {name!r} (known: {', '.join(TRACKERS)}, none)")
        try:
            importlib.import_module(TRACKERS[name])
        except ImportError:
            raise TrackingError(
                f"tracking.report_to: {name} is not installed; install the extra: {EXTRA}"
            ) from None


def stage_key(stage: str) -> str:
    """`baselines/combined` -> `baselines-combined` (a folder and run name)."""
    return stage.replace("/", "-")


def iteration_scalars(entry: Iteration | Mapping[str, Any], teacher: TeacherStats | Mapping[str, Any] | None) -> dict[str, float]:
    """The loop's metrics of one iteration (an entry of metrics.json's `iterations`), flat."""
    it = entry if isinstance(entry, Iteration) else Iteration.read(entry)
    stats = teacher if isinstance(teacher, TeacherStats) else TeacherStats.read(teacher or {})
    scalars: dict[str, float | None] = {}
    for key, result in it.eval.items():
        scalars[f"eval/{key}/accuracy"] = result.accuracy
        for name, share in result.strategy_distribution.items():
            scalars[f"eval/{key}/choice/{name}"] = share
    train = it.train or TrainStats()
    scalars["mix/alpha"] = train.alpha
    for name, count in train.strategy_counts.items():
        scalars[f"mix/share/{name}"] = count / max(1, sum(train.strategy_counts.values()))
    scalars.update({"train/teacher_count": train.teacher_count, "train/student_count": train.student_count,
                    "train/steps": train.steps, "train/train_loss": train.train_loss})
    if it.student:
        if it.student.solved_questions is not None:
            scalars["student/solved_share"] = it.student.solved_questions / max(1, it.student.questions or 0)
        scalars["student/correct_samples"] = it.student.correct
        sampled = it.student.strategy_counts
        for name, count in sampled.items():
            scalars[f"student/choice/{name}"] = count / max(1, sum(sampled.values()))
    scalars["kl/train_samples"] = it.kl_train_samples
    scalars["kl/train_validation"] = it.kl_train_validation
    scalars.update({"teacher/cost": stats.cost, "teacher/prompt_tokens": stats.prompt_tokens,
                    "teacher/completion_tokens": stats.completion_tokens})
    return {key: float(value) for key, value in scalars.items() if value is not None}


class Tracker:
    """The trackers of one siked run; a no-op when none is configured."""

    def __init__(self, report_to: list[str], project: str, run_dir: Path):
        self.report_to = enabled(report_to)
        check_installed(self.report_to)
        self.project = project
        self.run_dir = Path(run_dir)
        self.name = self.run_dir.resolve().name
        self._tensorboard: Any = None
        self._wandb: Any = None
        self._wandb_id: str | None = None
        """The loop's W&B run, kept across its closings around each training stage."""

    @property
    def root(self) -> Path:
        return self.run_dir / "tracking"

    def trainer_args(self, stage: str) -> dict[str, Any]:
        """TrainingArguments fields for one training stage (`report_to`, run and project names)."""
        if not self.report_to:
            return {"report_to": "none"}
        args: dict[str, Any] = {"report_to": list(self.report_to), "run_name": f"{self.name}/{stage_key(stage)}"}
        if "trackio" in self.report_to:  # a TrainingArguments field only since Trackio's integration
            args["project"] = self.project
        return args

    @contextmanager
    def training(self, stage: str, child_process: bool = False) -> Iterator[dict[str, Any]]:
        """Around one training stage: the log directory the TensorBoard callback reads, and the
        stage's own W&B run, made here (the callback logs into an open run) and finished after.

        `child_process`: the trainer runs in a child (`siked.stages`), which inherits the
        environment set here; its W&B callback makes the stage's run itself, from WANDB_* variables.
        """
        updates: dict[str, str] = {}
        if "tensorboard" in self.report_to:
            updates["TENSORBOARD_LOGGING_DIR"] = str(self.root / stage_key(stage))
        if "wandb" in self.report_to:
            # The transformers callback logs into the global run: the loop's run is closed meanwhile
            # (and resumed at its next log), so that the stage's run is the only one open.
            self._close_wandb()
            if child_process:
                (self.root / "wandb").mkdir(parents=True, exist_ok=True)
                updates.update(WANDB_PROJECT=self.project, WANDB_RUN_GROUP=self.name, WANDB_DIR=str(self.root),
                               WANDB_JOB_TYPE="train")
            else:
                self._wandb_init(f"{self.name}/{stage_key(stage)}", job_type="train")
        saved = {key: os.environ.get(key) for key in updates}
        os.environ.update(updates)
        try:
            yield self.trainer_args(stage)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if "wandb" in self.report_to and not child_process:
                import wandb

                if wandb.run is not None:
                    wandb.finish()

    def _wandb_init(self, name: str, **kwargs: Any) -> Any:
        import wandb

        (self.root / "wandb").mkdir(parents=True, exist_ok=True)
        return wandb.init(project=self.project, group=self.name, name=name, dir=str(self.root), **kwargs)

    def log(self, iteration: int, scalars: Mapping[str, float]) -> None:
        """Send one iteration's metrics to every configured tracker."""
        if not self.report_to or not scalars:
            return
        if "tensorboard" in self.report_to:
            self._log_tensorboard(iteration, scalars)
        if "wandb" in self.report_to:
            self._log_wandb(iteration, scalars)
        if "trackio" in self.report_to:
            self._log_trackio(iteration, scalars)

    def _log_tensorboard(self, iteration: int, scalars: Mapping[str, float]) -> None:
        if self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.root / "loop"))
        for key, value in scalars.items():
            self._tensorboard.add_scalar(key, value, global_step=iteration)
        self._tensorboard.flush()

    def _log_wandb(self, iteration: int, scalars: Mapping[str, float]) -> None:
        if self._wandb is None:
            self._wandb = self._wandb_init(f"{self.name}/loop", job_type="loop", id=self._wandb_id, resume="allow")
            self._wandb_id = self._wandb.id
            self._wandb.define_metric("iteration")
            self._wandb.define_metric("*", step_metric="iteration")
        self._wandb.log({"iteration": iteration, **scalars})

    def _log_trackio(self, iteration: int, scalars: Mapping[str, float]) -> None:
        import trackio

        # Opened and finished per call: the trainer's Trackio callback uses the same global run.
        run = trackio.init(project=self.project, name=f"{self.name}/loop", group=self.name, resume="allow",
                           embed=False)
        run.log(dict(scalars), step=iteration)
        trackio.finish()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        self._close_wandb()

    def _close_wandb(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
