"""What a kill in the middle of an atomic write leaves (a staging file or folder never renamed into
place) is removed when `siked run` next opens the run directory under its lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siked.config import load_config
from siked.io import atomic_directory, atomic_path
from siked.rundir import MANIFEST, RunDir

UNFINISHED: list[Any] = []
"""The writers cut short, held so that no cleanup of theirs runs (a killed process runs none)."""


def cut_short(target: Path, directory: bool = False) -> Path:
    """Start an atomic write of `target` and leave it as SIGKILL would: staged, never renamed."""
    writer = atomic_directory(target, marker="config.json") if directory else atomic_path(target)
    UNFINISHED.append(writer)
    staging = writer.__enter__()
    (staging / "config.json" if directory else staging).write_text('{"half": ')
    return staging


def test_a_resumed_run_removes_half_written_files_but_not_the_reports_lock_free_writes(tmp_path: Path) -> None:
    config = load_config(None, [f"out={tmp_path / 'run'}"])
    run = RunDir.open(config).path
    stale = [cut_short(run / "teacher" / "teacher.jsonl"), cut_short(run / "iter1" / "train.jsonl"),
             cut_short(run / "iter1" / "model" / "merged", directory=True), cut_short(run / "metrics.json")]
    report = [cut_short(run / "report.html"), cut_short(run / "plots" / "accuracy.png")]
    (run / "iter1" / ".hidden").write_text("not a staging name")

    reopened = RunDir.open(config)
    assert sorted(reopened.swept) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in report) and (run / "iter1" / ".hidden").exists()


def test_a_first_manifest_cut_short_does_not_make_the_directory_foreign(tmp_path: Path) -> None:
    config = load_config(None, [f"out={tmp_path / 'run'}"])
    staging = cut_short(tmp_path / "run" / MANIFEST)
    run = RunDir.open(config)
    assert run.swept == [staging] and not staging.exists()
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["stages"] == {}
