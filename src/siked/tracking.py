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


def iteration_scalars(entry: Mapping[str, Any], teacher: Mapping[str, Any]) -> dict[str, float]:
    """The loop's metrics of one iteration (an entry of metrics.json's `iterations`), flat."""
    scalars: dict[str, float] = {}
    for key, summary in entry.get("eval", {}).items():
        if "accuracy" in summary:
            scalars[f"eval/{key}/accuracy"] = summary["accuracy"]
        for name, share in summary.get("strategy_distribution", {}).items():
            scalars[f"eval/{key}/choice/{name}"] = share
    train = entry.get("train", {})
    if "alpha" in train:
        scalars["mix/alpha"] = train["alpha"]
    counts = train.get("strategy_counts", {})
    for name, count in counts.items():
        scalars[f"mix/share/{name}"] = count / max(1, sum(counts.values()))
    for key in ("teacher_count", "student_count", "steps", "train_loss"):
        if isinstance(train.get(key), (int, float)):
            scalars[f"train/{key}"] = train[key]
    student = entry.get("student")
    if student:
        scalars["student/solved_share"] = student["solved_questions"] / max(1, student["questions"])
        scalars["student/correct_samples"] = student["correct"]
        sampled = student.get("strategy_counts", {})
        for name, count in sampled.items():
            scalars[f"student/choice/{name}"] = count / max(1, sum(sampled.values()))
    if entry.get("kl_train_student") is not None:
        scalars["kl_train_student"] = entry["kl_train_student"]
    for key in ("cost", "prompt_tokens", "completion_tokens"):
        if isinstance(teacher.get(key), (int, float)):
            scalars[f"teacher/{key}"] = teacher[key]
    return {key: float(value) for key, value in scalars.items()}


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
    def training(self, stage: str) -> Iterator[dict[str, Any]]:
        """Around one training stage: the log directory the TensorBoard callback reads, and the
        stage's own W&B run, made here (the callback logs into an open run) and finished after."""
        saved = os.environ.get("TENSORBOARD_LOGGING_DIR")
        if "tensorboard" in self.report_to:
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(self.root / stage_key(stage))
        if "wandb" in self.report_to:
            # The transformers callback logs into the global run: the loop's run is closed meanwhile
            # (and resumed at its next log), so that the stage's run is the only one open.
            self._close_wandb()
            self._wandb_init(f"{self.name}/{stage_key(stage)}", job_type="train")
        try:
            yield self.trainer_args(stage)
        finally:
            if saved is None:
                os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
            else:
                os.environ["TENSORBOARD_LOGGING_DIR"] = saved
            if "wandb" in self.report_to:
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
