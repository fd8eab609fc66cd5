"""One writer per run directory: a live holder refuses the next writer, a dead one's lock is taken over."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siked.cli import app
from siked.config import load_config
from siked.rundir import RunDir
from siked.runlock import LOCK_FILE, RunLockError, run_lock

HOLD = ("import sys, time; from pathlib import Path; from siked.runlock import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)\n")


@pytest.fixture
def holder(tmp_path: Path):
    """A separate process holding the lock of tmp_path/run, killed at the end."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdout.close()


def test_a_second_siked_run_is_refused_on_one_line_naming_the_holder(holder: subprocess.Popen, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "siked.cli", "run", "--out", str(run_dir), "--set", "loop.report=false"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    pattern = (rf"error: run directory {re.escape(str(run_dir))} is in use by siked run pid {holder.pid} on host "
               r"\S+ since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; wait for it or stop it")
    assert re.fullmatch(pattern, errors[0])
    assert not (run_dir / "manifest.json").exists()  # refused before touching the run


def test_a_killed_holders_lock_is_free_at_once_and_taken_over_with_a_note(holder: subprocess.Popen, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(RunLockError, match=f"in use by siked run pid {holder.pid} "):
        with run_lock(run_dir):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == holder.pid  # its record stays behind
    notes: list[str] = []
    with run_lock(run_dir, note=notes.append):
        record = json.loads((run_dir / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "siked run"
    assert notes == [f"note: taking over the lock of pid {holder.pid} (no longer running)"]
    with run_lock(run_dir, note=notes.append):  # a clean exit leaves nothing to take over
        pass
    assert len(notes) == 1


def test_a_directory_holding_only_the_lock_file_starts_a_new_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with run_lock(run_dir):
        run = RunDir.open(load_config(None, [f"out={run_dir}"]))
    assert run.manifest["stages"] == {} and (run_dir / LOCK_FILE).exists()


def test_reading_a_run_works_while_another_process_holds_its_lock(holder: subprocess.Popen, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "manifest.json").write_text(json.dumps({"stages": {}}))
    (run_dir / "metrics.json").write_text(json.dumps({"iterations": [], "best_model": None}))
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--overview", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best_model"] is None
