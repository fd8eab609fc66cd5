"""Stage children die with the loop that started them, however it ends.

The loop starts every child as `python -m siked.lifeline COMMAND...`: this asks the kernel
(Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`) to kill the process when its parent dies, checks the
parent did not die before the request took effect, and then `exec`s COMMAND, which keeps the
setting. Under `accelerate launch` the ranks are the launcher's children: the worker asks the same
for itself on entry (`die_with_parent`). Where prctl does not exist a watcher thread does the job
(`watch_parent`). A SIGTERM of the loop becomes a KeyboardInterrupt (`sigterm_interrupts`), so
that it stops its children's process group as Ctrl-C does; see `siked.stages.run_child`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PARENT_ENV = "SIKED_STAGE_PARENT"
"""The loop's process id, given to children so that they stop when the loop is gone."""
PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 2.0
ORPHANED = 3
"""The exit status of a child that stops because its parent is gone."""


def request_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent (the thread that forked it) exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def loop_pid() -> int | None:
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


def die_with_parent(expected_parent: int | None = None) -> None:
    """Die when the parent dies; exit at once if it died already (before the kernel knew to tell us)."""
    parent = os.getppid() if expected_parent is None else expected_parent
    request_death_signal()
    if os.getppid() != parent or os.getppid() == 1:
        os._exit(ORPHANED)


def watch_parent() -> None:
    """Exit when the loop that started this stage is gone (killed), instead of working on for nobody:
    the portable fallback to the death signal, and a second guard for ranks under a launcher."""
    parent = loop_pid()
    if parent is None:
        return
    started_under = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(ORPHANED)
            except PermissionError:
                pass
            if os.getppid() != started_under:  # our own launcher (accelerate, torchrun) died
                os._exit(ORPHANED)

    threading.Thread(target=watch, name="siked-parent-watch", daemon=True).start()


def wrap(command: list[str]) -> list[str]:
    """`command` run through this module, so that it dies with the process that starts it."""
    return [sys.executable, "-m", "siked.lifeline", *command]


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM raises KeyboardInterrupt: the loop's cleanup runs
    (children stopped, lock released) instead of the process vanishing on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m siked.lifeline COMMAND [ARG...]")
    die_with_parent(loop_pid())
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
