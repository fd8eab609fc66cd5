"""No orphans: a stage's processes stop with the loop that started them, however the loop ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siked.config import SikedConfig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

LOOP = """
import sys
from pathlib import Path
from siked.lifeline import sigterm_interrupts
from siked.stages import run_child
with sigterm_interrupts():
    run_child([sys.executable, "-c", sys.argv[1]], "iter1/train", Path(sys.argv[2]), sys.stderr)
"""
"""A stand-in for `siked run`: one stage child, started as the loop starts them."""

REPORT_PID = "import os; print('pid', os.getpid(), flush=True)\n"
SLEEPER = REPORT_PID + "import time; time.sleep(600)\n"
LAUNCHER = REPORT_PID + """
import subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1] if len(sys.argv) > 1 else {rank!r}])
"""
"""A stand-in for `accelerate launch`: its rank is the loop's grandchild."""

RANK = """
import os, sys, time
import siked.stage_worker as worker
from siked.stage_requests import StageArgs

class Sleep(StageArgs):
    kind = "sleep"

worker.stage_body(Sleep)(lambda request, console: (print("pid", os.getpid(), flush=True), time.sleep(600)))
sys.exit(worker.main([{request!r}]))
"""
"""A rank running the real stage worker's entry on a stage that sleeps (it says its pid once in the stage)."""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def stage_pids(log: Path, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("pid ")] \
            if log.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"the stage processes did not start: {log.read_text() if log.exists() else 'no log'}")


def gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def start_loop(child_code: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "log.txt"
    loop = subprocess.Popen([sys.executable, "-c", LOOP, child_code, str(log)], stderr=subprocess.DEVNULL)
    return loop, log


def stop(processes: list[int], loop: subprocess.Popen) -> None:
    for pid in processes:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if loop.poll() is None:
        loop.kill()
    loop.wait()


def test_a_stage_child_dies_with_a_sigkilled_loop(tmp_path: Path) -> None:
    loop, log = start_loop(SLEEPER, tmp_path)
    (child,) = stage_pids(log, 1)
    try:
        time.sleep(1)
        assert alive(child)  # the loop is alive: so is its stage
        os.kill(loop.pid, signal.SIGKILL)
        assert gone_within([child], 5)
    finally:
        stop([child], loop)


def test_a_rank_under_a_launcher_dies_with_a_sigkilled_loop(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"stage": "iter1/train", "kind": "sleep", "args": {},
                                   "config": SikedConfig().model_dump(mode="json")}))
    loop, log = start_loop(LAUNCHER.format(rank=RANK.format(request=str(request))), tmp_path)
    pids = stage_pids(log, 2)
    try:
        time.sleep(1)
        assert all(alive(pid) for pid in pids)
        os.kill(loop.pid, signal.SIGKILL)
        # the launcher (loop's child) and the rank (its child) both go, well before the watcher's 2 s poll
        assert gone_within(pids, 1.5)
    finally:
        stop(pids, loop)


def test_a_sigterm_of_the_loop_stops_the_stages_whole_process_group(tmp_path: Path) -> None:
    # the grandchild asks for no death signal: only the stop of its process group can end it
    loop, log = start_loop(LAUNCHER.format(rank=SLEEPER), tmp_path)
    pids = stage_pids(log, 2)
    try:
        time.sleep(1)
        assert all(alive(pid) for pid in pids)
        os.kill(loop.pid, signal.SIGTERM)
        assert gone_within(pids, 10)
        assert loop.wait(timeout=10) != 0
    finally:
        stop(pids, loop)
