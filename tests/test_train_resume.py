"""`siked train --out DIR` resumes only from checkpoints trained on the same inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siked.config import SikedConfig
from siked.rundir import RunDirError
from siked.student import TrainExample, train_student
from siked.student.models import MANIFEST
from siked.student.train import FINGERPRINT

DATA_A = [
    TrainExample("Tom has 3 apples and buys 2 more. How many apples does he have?", "cot",
                 "3 + 2 = 5 apples.\nThe answer is 5."),
    TrainExample("A box holds 4 pens. How many pens are in 3 boxes?", "cot", "4 * 3 = 12 pens.\nThe answer is 12."),
]
DATA_B = [
    TrainExample("Sara reads 10 pages a day. How many pages does she read in 4 days?", "cot",
                 "10 * 4 = 40 pages.\nThe answer is 40."),
    DATA_A[1],
]


def small_config(**train: object) -> SikedConfig:
    cfg = SikedConfig()
    settings = dict(max_length=128, per_device_batch_size=1, gradient_accumulation_steps=1,
                    learning_rate=1e-3, warmup_steps=0, save_steps=1)
    cfg.train = cfg.train.model_copy(update={**settings, **train})
    return cfg


class _Interrupt(Exception):
    pass


def _interrupt_after_step(step: int):
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Interrupt

    return Stop()


def _cli_train(data: list[TrainExample], tmp_path: Path, out: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "cli_data.jsonl"
    path.write_text("".join(json.dumps({"problem_id": str(i), "strategy": ex.strategy, "solution": ex.solution,
                                        "question": ex.question}) + "\n" for i, ex in enumerate(data)))
    sets = ["max_length=128", "per_device_batch_size=1", "gradient_accumulation_steps=1",
            "learning_rate=0.001", "warmup_steps=0", "save_steps=1"]
    command = [sys.executable, "-m", "siked.cli", "train", "--data", str(path), "--out", str(out), "--max-steps", "3"]
    for setting in sets:
        command += ["--set", f"train.{setting}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ})


@pytest.mark.slow
def test_checkpoints_from_other_data_or_previous_are_refused(model_cache: Path, tmp_path: Path) -> None:
    previous = tmp_path / "previous"  # refused before anything is read from it
    previous.mkdir()
    out = tmp_path / "student"
    with pytest.raises(_Interrupt):
        train_student(DATA_A, small_config(), out, max_steps=3, progress=False,
                      callbacks=[_interrupt_after_step(2)])
    assert (out / "checkpoints" / "checkpoint-2").is_dir() and (out / FINGERPRINT).is_file()

    with pytest.raises(RunDirError) as other_data:
        train_student(DATA_B, small_config(), out, max_steps=3, progress=False)
    message = str(other_data.value)
    assert f"{out} holds checkpoints of a training run on other inputs" in message
    assert "examples_sha256: was" in message and f"pick another --out or delete {out}" in message

    with pytest.raises(RunDirError, match=r"previous: was None, now '.*previous'"):
        train_student(DATA_A, small_config(), out, previous=previous, max_steps=3, progress=False)
    with pytest.raises(RunDirError, match=r"train: was \{.*learning_rate=0\.001"):
        train_student(DATA_A, small_config(learning_rate=5e-4), out, max_steps=3, progress=False)

    cli = _cli_train(DATA_B, tmp_path, out)
    assert cli.returncode == 2, cli.stderr
    assert "Traceback" not in cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pick another --out or delete" in lines[0]
    assert (out / "checkpoints" / "checkpoint-2").is_dir()  # nothing already computed is lost

    # Same data and hyper-parameters, other operational settings: resumes where it stopped.
    result = train_student(DATA_A, small_config(logging_steps=2, save_total_limit=1), out, max_steps=3,
                           progress=False)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-2")
    assert result.steps == 3 and (out / MANIFEST).is_file()


def test_a_previous_iteration_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    from siked.student import ModelError

    with pytest.raises(ModelError, match=r"previous iteration .*nope is not a directory"):
        train_student(DATA_A, small_config(), tmp_path / "out", previous=tmp_path / "nope", progress=False)


def test_checkpoints_from_before_the_prompt_listed_the_taught_strategies_resume_when_it_lists_the_same(
    tmp_path: Path,
) -> None:
    from siked.student.train import check_resumable

    (tmp_path / "checkpoints").mkdir()
    fingerprint = {"examples": 2, "prompt_style": "alpaca", "strategies": ["cot", "l2m", "pot"]}
    (tmp_path / FINGERPRINT).write_text(json.dumps({"examples": 2, "prompt_style": "alpaca"}))
    check_resumable(tmp_path, fingerprint)  # that prompt listed every registered strategy: these three
    with pytest.raises(RunDirError, match=r"strategies: was \['cot', 'l2m', 'pot'\], now \['cot', 'pot'\]"):
        check_resumable(tmp_path, {**fingerprint, "strategies": ["cot", "pot"]})
