"""Training progress on a rich console: a bar over optimizer steps and a loss line per log."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback


class RichTrainProgress(TrainerCallback):
    """A rich progress bar over optimizer steps, with one loss line per logging step.

    (TRL's RichProgressCallback draws on stdout; this one uses the given console, stderr in the CLI.)
    """

    def __init__(self, console: Any = None):
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self.bar.start()
        self.task = self.bar.add_task("training", total=state.max_steps, completed=state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.bar is None or not logs or "loss" not in logs:
            return
        line = f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}"
        if "learning_rate" in logs:
            line += f"  lr {logs['learning_rate']:.2e}"
        self.bar.console.print(line, highlight=False)
        self.bar.update(self.task, description=f"training (loss {logs['loss']:.3f})")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
