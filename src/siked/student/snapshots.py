"""Loadable copies of a model during training, so a run can choose its checkpoint on validation.

A baseline trains once; at the steps it is asked for (SIKeD's cumulative iteration steps), at the
end of every epoch and at the end of training, `SnapshotCallback` writes `snapshots/step-<N>/`
beside the trained model: the LoRA adapter (or full weights), the tokenizer and a student manifest,
so each snapshot loads like any `train_student` output. Unlike the trainer's checkpoints, they hold
no optimizer state and are never rotated away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from siked.names import SNAPSHOTS, snapshot_folder
from siked.student.models import MANIFEST, write_manifest


def snapshot_dir(model_dir: Path | str, step: int) -> Path:
    return Path(model_dir) / snapshot_folder(step)


def snapshot_steps(model_dir: Path | str) -> list[int]:
    """The steps of the finished snapshots in a trained model's folder, in order."""
    folder = Path(model_dir) / SNAPSHOTS
    if not folder.is_dir():
        return []
    return sorted(int(d.name.removeprefix("step-")) for d in folder.iterdir()
                  if d.name.startswith("step-") and (d / MANIFEST).is_file())


def snapshot_callback(model_dir: Path, steps: Iterable[int], tokenizer: Any,
                      manifest: Callable[[int], dict[str, Any]], is_main: bool) -> Any:
    """A `transformers.TrainerCallback` writing snapshots at `steps`, every epoch's end and the end."""
    from transformers import TrainerCallback

    wanted = set(steps)

    class SnapshotCallback(TrainerCallback):
        def save(self, state: Any, model: Any) -> None:
            step = state.global_step
            target = snapshot_dir(model_dir, step)
            if not is_main or step == 0 or (target / MANIFEST).is_file():
                return
            entry = manifest(step)
            model.save_pretrained(str(target / (entry["adapter"] or entry["model"])))
            tokenizer.save_pretrained(str(target / (entry["adapter"] or entry["model"])))
            write_manifest(target, entry)  # last: a snapshot without its manifest is not finished

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if state.global_step in wanted:
                self.save(state, model)

        def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.save(state, model)

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.save(state, model)

    return SnapshotCallback()
