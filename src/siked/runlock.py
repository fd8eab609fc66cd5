"""One writer per run directory: `siked run` holds an exclusive lock on RUN/run.lock for its life.

The lock is an `fcntl.flock` on the file, so the kernel drops it the moment its holder dies
(killed, out of memory, the machine rebooted): there is never a lock to remove by hand. The file
also holds a small JSON record of the holder (pid, host, start time) so that a second writer can
say who is in the way. A clean exit empties the record; a record left behind by a holder that
died is taken over with a note. Stage children run under their parent's lock and never take it
(the lock's descriptor is not inherited: Python opens files close-on-exec).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError

from siked.errors import SikedError

LOCK_FILE = "run.lock"
RECORD_WAIT_S = 1.0
"""How long a refused writer waits for the holder's record, which is written just after the lock is taken."""


class RunLockError(SikedError):
    """Another process is writing the run directory."""


class LockHolder(BaseModel):
    """Who holds a run directory's lock: the record in RUN/run.lock."""

    pid: int
    host: str
    since: str
    command: str = "siked run"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_holder(fd: int) -> LockHolder | None:
    """The record in the lock file, or None when it is empty or unreadable."""
    text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        return LockHolder.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def write_holder(fd: int, holder: LockHolder | None) -> None:
    os.ftruncate(fd, 0)
    if holder is not None:
        os.pwrite(fd, (holder.model_dump_json() + "\n").encode("utf-8"), 0)
        os.fsync(fd)


def busy_message(run_dir: Path, holder: LockHolder | None) -> str:
    if holder is None:
        who = "another siked process (it has not written its record yet)"
    else:
        who = f"{holder.command} pid {holder.pid} on host {holder.host} since {holder.since}"
    return f"run directory {run_dir} is in use by {who}; wait for it or stop it"


def refused(fd: int, run_dir: Path) -> RunLockError:
    deadline = time.monotonic() + RECORD_WAIT_S
    holder = read_holder(fd)
    while holder is None and time.monotonic() < deadline:
        time.sleep(0.05)
        holder = read_holder(fd)
    return RunLockError(busy_message(run_dir, holder))


def take_lock(run_dir: Path, command: str, note: Callable[[str], None]) -> int:
    """Lock `run_dir` (creating it) and write this process's record; returns the locked descriptor."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        error = refused(fd, run_dir)
        os.close(fd)
        raise error from None
    stale = read_holder(fd)
    if stale is not None:
        note(f"note: taking over the lock of pid {stale.pid} (no longer running)")
    write_holder(fd, LockHolder(pid=os.getpid(), host=socket.gethostname(), since=utc_now(), command=command))
    return fd


def release_lock(fd: int) -> None:
    write_holder(fd, None)  # a clean exit leaves no record, so the next writer has nothing to note
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def run_lock(run_dir: Path, command: str = "siked run",
             note: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run directory's lock for the block; raises `RunLockError` naming the holder if another
    live process has it. `note` gets the one line said when a dead holder's record is taken over."""
    fd = take_lock(Path(run_dir), command, note or (lambda line: print(line, file=sys.stderr)))
    try:
        yield
    finally:
        release_lock(fd)
