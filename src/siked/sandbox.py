"""Sandbox for program-of-thought (PoT) solutions: run untrusted Python, read back its `answer`.

Programs never run in the caller's process. A `SandboxPool` keeps warm worker processes; each
program runs in a process forked from a warm worker, so its cost is a fork, not an interpreter
start. One worker is this process tree:

    caller (SandboxPool)
      └─ launcher   `python -I sandbox.py SETTINGS`: enters new PID and network namespaces, supervises
           └─ server    PID 1 of the new PID namespace: imports the prelude once, serves requests
                └─ program   forked per request: limits, dropped privileges, audit hook, exec(code)

Caller and launcher talk over the launcher's stdin/stdout with length-prefixed JSON frames.

Workers come in two kinds. Forking a process that has imported sympy costs about 1.6 ms more per
program (copy-on-write faults over a heap five times larger), and most programs never use sympy.
So "base" workers load the prelude without sympy and run every program whose code uses none of
the sympy prelude names (SYMPY_NAMES) as a name (comments, strings and attributes do not count);
the others go to "sympy" workers, which load all of it. A program that reaches a sympy name
without spelling it (`eval("Sym" + "bol")`) stops on a base worker with a NameError for that name
and is run again, from the start and within what is left of its time limit, on a sympy worker.
What a base worker cannot make identical: a program that looks its names up itself
(`globals().get("solve")`, `dir()`), catches that NameError itself, checks whether sympy is
loaded, or imports sympy itself (it then pays the import inside its own time limit); and, as
RLIMIT_AS is absolute, a base worker leaves a program sympy's share of memory more room.

Programs see the PoT prelude (PRELUDE below: math and `from math import *`, Fraction, Decimal,
statistics, itertools, collections, sympy with Symbol/symbols/Eq/solve/simplify/Rational, and
`solve_it(equations, variables)`), run with `__name__ == "__main__"`, and report the variable
`answer`. Other modules (numpy, ...) can be imported; they load in the program's own process.

What holds a hostile program, strongest first (Linux; each layer degrades gracefully where the
kernel or the privileges do not allow it, and `SandboxPool.isolation` says what is in force):
  - the server SIGKILLs the program at the wall-clock timeout; the caller replaces a server that
    does not answer in time; RLIMIT_CPU backs both;
  - PID namespace: the server is PID 1, so it cannot be killed from inside, every leftover process is
    killed with kill(-1) after each program, and all of them die with the server;
  - network namespace: no interface but a down loopback;
  - mount namespace: the whole file system read-only, a private /proc (no other process's environ),
    the program's working directory an empty directory on a private, size-capped tmpfs;
  - as root: the program runs as uid 65534 (so RLIMIT_NPROC=0 forbids fork and threads, and it cannot
    signal root processes) with the file-system uid kept at 0 so that it can still import modules
    from a root-only Python install, without capabilities, with no_new_privs;
  - rlimits: address space, CPU, file size, open files, processes, no core files;
  - a stripped environment (the caller's variables never reach the worker), stdin from /dev/null,
    output captured through a pipe and capped;
  - an audit hook (defence in depth only): refuses fork/exec/spawn/subprocess/kill, sockets, ctypes,
    writes outside the working directory and reads of other processes' /proc entries.
Files readable by the worker's user stay readable to programs; nothing can be written outside the
program's own directory, and no network is reachable to send anything anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from siked.config import SandboxConfig

if __name__ == "__main__":
    # The launcher runs this file as a script (`python -I`, which ignores PYTHONPATH): it must
    # not need the siked package, and never raises SandboxError.
    class SikedError(Exception):  # type: ignore[no-redef]
        pass
else:
    from siked.errors import SikedError

log = logging.getLogger(__name__)

ANSWER_CHARS = 1000
"""`ExecResult.answer` is cut to this many characters."""
ERROR_CHARS = 500
FILE_SIZE_LIMIT = 16 * 1024 * 1024
"""RLIMIT_FSIZE of a program: the largest file it may write in its directory."""
TMPFS_OPTIONS = b"size=64m,nr_inodes=4096,mode=0700"
OPEN_FILES_LIMIT = 64
STARTUP_TIMEOUT_S = 120.0
"""How long a fresh worker may take to import the prelude (sympy) on a busy machine."""
REPLY_GRACE_S = 5.0
"""Extra time the caller grants a worker beyond the program's timeout before replacing it."""
UNPRIVILEGED_UID = 65534
MAX_TIMEOUT_S = 24 * 3600.0

_FRAME_HEADER = struct.Struct(">I")
_MAX_FRAME = 1 << 30
_WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

BASE_PRELUDE = '''
import math
import cmath
import collections
import datetime
import decimal
import fractions
import functools
import itertools
import operator
import random
import re
import statistics
import string
from math import *
from fractions import Fraction
from decimal import Decimal
'''

SYMPY_PRELUDE = '''
import sympy
from sympy import Eq, N, Rational, Symbol, expand, factor, nsimplify, simplify, solve, symbols


class _Solution(dict):
    """Solutions keyed by sympy symbols; a symbol's name works as a key too."""

    def __missing__(self, key):
        if isinstance(key, str):
            for symbol, value in self.items():
                if str(symbol) == key:
                    return value
        raise KeyError(key)


def solve_it(equations, variables):
    """Solve equations for variables with sympy; the first solution as {variable: value}.

    A variable that the solution leaves free maps to itself; with no solution every variable maps
    to None.
    """
    equations = list(equations) if isinstance(equations, (list, tuple, set)) else [equations]
    variables = list(variables) if isinstance(variables, (list, tuple)) else [variables]
    solutions = solve(equations, variables, dict=True)
    if not solutions:
        return _Solution({v: None for v in variables})
    first = solutions[0]
    return _Solution({v: first.get(v, v) for v in variables})
'''

PRELUDE = BASE_PRELUDE + SYMPY_PRELUDE
"""Every name a program can use without importing it (what one interpreter would run first)."""

SYMPY_NAMES = frozenset({"sympy", "Eq", "N", "Rational", "Symbol", "expand", "factor", "nsimplify",
                         "simplify", "solve", "symbols", "solve_it", "_Solution"})
"""Prelude names that need sympy: a program naming any of them runs on a sympy worker."""
_SYMPY_WORD = re.compile(r"\b(?:" + "|".join(sorted(SYMPY_NAMES)) + r")\b")
"""Fallback of `needs_sympy` for code that does not tokenize (it fails anyway, on either kind)."""

_BASE_WARMUP = """
float(Fraction(1, 3) + Fraction(1, 6)); statistics.mean([1, 2]); Decimal("0.5") * 2
"""
_SYMPY_WARMUP = """
_x, _y = symbols("_x _y")
solve_it([Eq(_x + _y, 10), Eq(_x - _y, 2)], [_x, _y])
float(Rational(1, 3) + Fraction(1, 6)); simplify(2 * _x / 2); N(sympy.sqrt(2))
"""


@dataclass(frozen=True)
class ExecResult:
    """What one program did."""

    status: Literal["ok", "no_answer", "timeout", "error"]
    """no_answer: the program ran to the end but left no variable `answer`."""
    answer: str | None
    """str() of the program's final `answer`, cut to ANSWER_CHARS characters."""
    answer_float: float | None
    """float(answer) for numbers (int, float, Fraction, Decimal, sympy and numpy numbers); None for
    anything else, including strings and booleans."""
    stdout: str
    """stdout and stderr together, capped at max_output_bytes."""
    error: str | None
    """Short reason: `ExceptionType: message (line N)`, `killed: timeout`, `killed: memory`, ..."""
    seconds: float


class SandboxError(SikedError, RuntimeError):
    """The sandbox itself failed (a worker that cannot start, a closed pool), not a program."""


class SandboxPool:
    """Warm worker processes that run untrusted programs; thread-safe.

    workers: worker processes of each kind (None: one per CPU core; with the prelude there are two
    kinds, base and sympy, see the module docstring; at most `workers` programs run at once); timeout_s: wall-clock limit per program
    (overridable per `run`); cpu_s: RLIMIT_CPU per program; memory_mb: address-space limit per
    program (raised to what the warm interpreter maps already + 64 MB if below); max_output_bytes:
    stdout+stderr kept per program; prelude: provide the PoT prelude names.

    Workers start lazily on the first `run` (or explicitly with `start` / `with`). `close` kills
    every process the pool started; so does interpreter exit, and so do the workers themselves
    when the calling process dies.
    """

    _use_namespaces = True
    """Private switch so the tests can exercise the degraded (namespace-free) mode."""

    def __init__(
        self,
        workers: int | None = None,
        timeout_s: float = 5.0,
        cpu_s: int = 10,
        memory_mb: int = 1024,
        max_output_bytes: int = 65536,
        prelude: bool = True,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"sandbox workers must be >= 1, got {workers}")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"sandbox timeout_s must be in (0, {MAX_TIMEOUT_S:.0f}], got {timeout_s}")
        if cpu_s < 1:
            raise ValueError(f"sandbox cpu_s must be >= 1, got {cpu_s}")
        if memory_mb < 64:
            raise ValueError(f"sandbox memory_mb must be >= 64, got {memory_mb}")
        if max_output_bytes < 1:
            raise ValueError(f"sandbox max_output_bytes must be >= 1, got {max_output_bytes}")
        self.workers = workers or _cpu_count()
        self.timeout_s = float(timeout_s)
        self.cpu_s = int(cpu_s)
        self.memory_mb = int(memory_mb)
        self.max_output_bytes = int(max_output_bytes)
        self.prelude = prelude
        self._lock = threading.Lock()
        self._kinds = ("base", "sympy") if prelude else ("bare",)
        self._idle: dict[str, queue.Queue[_Worker]] = {kind: queue.Queue() for kind in self._kinds}
        self._slots = threading.BoundedSemaphore(self.workers)
        self._live: set[_Worker] = set()
        self._base_dir: str | None = None
        self._started = False
        self._closed = False
        self._owner_pid = os.getpid()
        self._isolation_by_kind: dict[str, dict[str, Any]] = {}
        self._finalizer: weakref.finalize | None = None

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> SandboxPool:
        return cls(
            workers=cfg.workers,
            timeout_s=cfg.timeout_s,
            cpu_s=cfg.cpu_s,
            memory_mb=cfg.memory_mb,
            max_output_bytes=cfg.max_output_bytes,
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> SandboxPool:
        """Launch the workers (they import the prelude in the background); idempotent."""
        with self._lock:
            self._check_usable()
            if self._started:
                return self
            self._base_dir = tempfile.mkdtemp(prefix="siked-sandbox-")
            self._finalizer = weakref.finalize(
                self, _shutdown, self._live, self._base_dir, self._owner_pid
            )
            for kind in self._kinds:
                for _ in range(self.workers):
                    self._idle[kind].put(self._spawn_locked(kind))
            self._started = True
        return self

    def close(self) -> None:
        """Kill every worker and everything it started; the pool cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def isolation(self) -> dict[str, Any]:
        """Which isolation layers the workers run under, known for each kind once one of its workers
        has run a program: a layer counts as in force only if it is for every kind seen."""
        merged: dict[str, Any] = {}
        for isolation in self._isolation_by_kind.values():
            for key, value in isolation.items():
                if isinstance(value, bool):
                    merged[key] = merged.get(key, True) and value
                else:
                    merged[key] = max(merged.get(key, value), value)
        return merged

    def worker_pids(self, kind: str | None = None) -> list[int]:
        """Process ids of the workers' launcher processes, of one kind ("base", "sympy", or "bare"
        without the prelude) or of every kind."""
        with self._lock:
            return sorted(w.proc.pid for w in self._live if kind is None or w.kind == kind)

    # -- running ----------------------------------------------------------------------------

    def run(self, code: str, timeout_s: float | None = None) -> ExecResult:
        """Run one program; blocks while `workers` programs are running already. Thread-safe.

        The time limit covers the program's whole stay, a rerun on a sympy worker included."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:.0f}], got {timeout}")
        self.start()
        with self._slots:
            reply = self._execute_on(self._route(code), code, timeout)
            if reply["status"] == "needs_sympy":
                spent = float(reply.get("seconds", 0.0))
                if spent >= timeout:
                    reply = {"status": "timeout", "error": "killed: timeout", "seconds": spent}
                else:
                    reply = self._execute_on("sympy", code, timeout - spent)
                    reply["seconds"] = spent + float(reply.get("seconds", 0.0))
        return _result_from_reply(reply)

    def _route(self, code: str) -> str:
        """The kind of worker a program goes to first."""
        if len(self._kinds) == 1:
            return self._kinds[0]
        return "sympy" if needs_sympy(code) else "base"

    def run_many(
        self, codes: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> list[ExecResult]:
        """Run programs, `workers` at a time; results in input order.

        `progress`, if given, is called with 1 each time a program finishes (e.g. a rich
        progress bar's `advance`).
        """
        from concurrent.futures import ThreadPoolExecutor, as_completed

        codes = list(codes)
        if not codes:
            return []
        self.start()
        results: list[ExecResult | None] = [None] * len(codes)
        executor = ThreadPoolExecutor(
            max_workers=min(self.workers, len(codes)), thread_name_prefix="siked-sandbox"
        )
        try:
            futures = {executor.submit(self.run, code): i for i, code in enumerate(codes)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return [r for r in results if r is not None]

    # -- internals --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise SandboxError("sandbox pool is closed")
        if os.getpid() != self._owner_pid:
            raise SandboxError("a SandboxPool cannot be used in a forked child; create a new one")

    def _settings(self) -> dict[str, Any]:
        return {
            "base_dir": self._base_dir,
            "cpu_s": self.cpu_s,
            "memory_mb": self.memory_mb,
            "max_output_bytes": self.max_output_bytes,
            "namespaces": self._use_namespaces,
        }

    def _execute_on(self, kind: str, code: str, timeout: float) -> dict[str, Any]:
        worker = self._take(kind)
        started = time.monotonic()
        try:
            reply = worker.execute(code, timeout)
        except _WorkerLost as lost:
            self._replace(worker)
            if self._closed:
                raise SandboxError("sandbox pool was closed while a program ran") from None
            return {"status": lost.status, "error": lost.reason, "seconds": time.monotonic() - started}
        except BaseException:
            self._replace(worker)
            raise
        self._idle[kind].put(worker)
        if kind not in self._isolation_by_kind and worker.isolation is not None:
            self._isolation_by_kind[kind] = worker.isolation
            _warn_if_degraded(worker.isolation, kind)
        return reply

    def _spawn_locked(self, kind: str) -> _Worker:
        worker = _Worker({**self._settings(), "prelude": kind})
        self._live.add(worker)
        return worker

    def _take(self, kind: str) -> _Worker:
        """An idle, live worker of this kind (one found dead while idle is replaced first)."""
        while True:
            self._check_usable()
            try:
                worker = self._idle[kind].get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    if self._started and not any(w.kind == kind for w in self._live):
                        raise SandboxError(f"no {kind} sandbox worker is left (starting one failed)") from None
                continue
            if worker.proc.poll() is None:
                return worker
            self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker in an unknown state and put a fresh one in its place."""
        worker.stop()
        with self._lock:
            self._live.discard(worker)
            if self._closed:
                return
            self._idle[worker.kind].put(self._spawn_locked(worker.kind))


def needs_sympy(code: str) -> bool:
    """Whether a program uses a sympy prelude name as a name (not in a comment, a string or as an
    attribute), and so runs on a sympy worker."""
    import io
    import tokenize  # here, not at the top: the workers run this file and need neither

    try:
        after_dot = False
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NAME and not after_dot and token.string in SYMPY_NAMES:
                return True
            after_dot = token.type == tokenize.OP and token.string == "."
        return False
    except (tokenize.TokenError, SyntaxError, ValueError):
        return _SYMPY_WORD.search(code) is not None


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _warn_if_degraded(isolation: dict[str, Any], kind: str) -> None:
    missing = [k for k in ("pid_namespace", "net_namespace", "readonly_root") if not isolation.get(k)]
    if missing:
        log.warning(
            "sandbox (%s workers) runs without %s (not available); programs are held by rlimits, "
            "timeouts and an audit hook only",
            kind, ", ".join(missing),
        )


def _result_from_reply(reply: dict[str, Any]) -> ExecResult:
    answer_float = reply.get("answer_float")
    return ExecResult(
        status=reply["status"],
        answer=reply.get("answer"),
        answer_float=None if answer_float is None else float(answer_float),
        stdout=reply.get("stdout", ""),
        error=reply.get("error"),
        seconds=float(reply.get("seconds", 0.0)),
    )


def _shutdown(live: set[_Worker], base_dir: str, owner_pid: int) -> None:
    """Stop every worker and remove the pool's directory (close() and interpreter exit)."""
    if os.getpid() != owner_pid:  # a forked copy of the caller must not kill the real pool
        return
    workers = list(live)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()
    live.clear()
    import shutil

    shutil.rmtree(base_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Caller side of one worker
# ---------------------------------------------------------------------------------------------


class _WorkerLost(Exception):
    """The worker died or stopped answering; it must be replaced."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Worker:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.kind: str = settings["prelude"]
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_WORKER_ENV,
            cwd="/",
            start_new_session=True,
            close_fds=True,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._to_worker = self.proc.stdin.fileno()
        self._from_worker = self.proc.stdout.fileno()
        self._poller = select.poll()
        self._poller.register(self._from_worker, select.POLLIN)
        self.isolation: dict[str, Any] | None = None

    def execute(self, code: str, timeout: float) -> dict[str, Any]:
        if self.isolation is None:
            hello = self._receive(time.monotonic() + STARTUP_TIMEOUT_S, startup=True)
            self.isolation = hello.get("isolation", {})
        try:
            _write_frame(self._to_worker, {"code": code, "timeout_s": timeout})
        except OSError:
            raise _WorkerLost("error", "sandbox worker died") from None
        return self._receive(time.monotonic() + timeout + REPLY_GRACE_S)

    def _receive(self, deadline: float, startup: bool = False) -> dict[str, Any]:
        try:
            header = _read_exact(self._from_worker, _FRAME_HEADER.size, deadline, self._poller)
            (size,) = _FRAME_HEADER.unpack(header)
            if size > _MAX_FRAME:
                raise _WorkerLost("error", "sandbox worker sent a malformed reply")
            return json.loads(_read_exact(self._from_worker, size, deadline, self._poller))
        except ValueError:
            raise _WorkerLost("error", "sandbox worker sent a malformed reply") from None
        except TimeoutError:
            if startup:
                raise SandboxError(
                    f"sandbox worker did not start within {STARTUP_TIMEOUT_S:.0f} s"
                ) from None
            raise _WorkerLost("timeout", "killed: timeout (worker unresponsive)") from None
        except EOFError:
            if startup:
                code = self.proc.wait()
                raise SandboxError(
                    f"sandbox worker exited with status {code} while starting "
                    "(its traceback is on stderr)"
                ) from None
            raise _WorkerLost("error", "sandbox worker died") from None

    def terminate(self) -> None:
        """Ask the launcher to kill its server and everything below (it cleans up orphans)."""
        if self.proc.returncode is None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Terminate, wait, and SIGKILL the whole process group if the launcher lingers."""
        self.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:  # not reaped yet, so the group id cannot have been reused
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _write_frame(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode("utf-8")
    view = memoryview(_FRAME_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int, deadline: float | None = None,
                poller: select.poll | None = None) -> bytes:
    """Read exactly `size` bytes; EOFError at end of stream, TimeoutError past the deadline
    (which needs a `poller` with `fd` registered; without a deadline reads block)."""
    chunks: list[bytes] = []
    while size:
        if poller is not None and deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not poller.poll(remaining * 1000):
                continue
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Worker side: Linux primitives (ctypes)
# ---------------------------------------------------------------------------------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 8, 36, 38
CAP_SETUID = 7
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and arm64
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD, AT_RECURSIVE = -100, 0x8000


class _Native:
    """The few libc calls Python's os module lacks. Only the worker creates one; a program's
    process drops every reference before running untrusted code."""

    def __init__(self) -> None:
        import ctypes as c

        class CapHeader(c.Structure):
            _fields_ = [("version", c.c_uint32), ("pid", c.c_int)]

        class CapData(c.Structure):
            _fields_ = [("effective", c.c_uint32), ("permitted", c.c_uint32),
                        ("inheritable", c.c_uint32)]

        self.ctypes = c
        self.libc = c.CDLL(None, use_errno=True)
        self._python_libc = c.PyDLL(None, use_errno=True)  # keeps the GIL held across fork()
        self._cap_header = CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        self._cap_data = {0: (CapData * 2)(), 1 << CAP_SETUID: (CapData * 2)()}
        for mask, data in self._cap_data.items():
            data[0].effective = data[0].permitted = mask

    def _call(self, what: str, result: int) -> None:
        if result != 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def unshare(self, flags: int) -> None:
        self._call("unshare", self.libc.unshare(flags))

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: bytes | None = None) -> None:
        result = self.libc.mount(_c_string(source), target.encode(), _c_string(fstype),
                                 self.ctypes.c_ulong(flags), data)
        self._call(f"mount {target}", result)

    def make_readonly_recursive(self, path: str) -> None:
        c = self.ctypes

        class MountAttr(c.Structure):
            _fields_ = [("attr_set", c.c_uint64), ("attr_clr", c.c_uint64),
                        ("propagation", c.c_uint64), ("userns_fd", c.c_uint64)]

        attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        result = self.libc.syscall(c.c_long(SYS_MOUNT_SETATTR), c.c_long(AT_FDCWD),
                                   c.c_char_p(path.encode()), c.c_long(AT_RECURSIVE),
                                   c.byref(attr), c.c_long(c.sizeof(attr)))
        self._call("mount_setattr", result)

    def prctl(self, option: int, value: int) -> None:
        self._call("prctl", self.libc.prctl(option, value, 0, 0, 0))

    def set_capabilities(self, mask: int) -> None:
        """Set effective = permitted = `mask` (0 or 1 << CAP_SETUID), inheritable = 0."""
        header = self.ctypes.byref(self._cap_header)
        self._call("capset", self.libc.capset(header, self._cap_data[mask]))

    def fork(self) -> int:
        """fork() without Python's at-fork machinery.

        os.fork() runs the interpreter's before/after-fork handlers, which in a process that has
        imported sympy touch (copy) a few hundred pages: 1-2 ms per program. The server is
        single-threaded and holds the GIL through this call (PyDLL), so the child's interpreter
        state is consistent without them; the one handler that matters (reseeding `random`)
        runs in the child explicitly.
        """
        pid = self._python_libc.fork()
        if pid < 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"fork: {os.strerror(errno)}")
        return pid

    def setfsuid(self, uid: int) -> None:
        self.libc.setfsuid(uid)  # returns the previous fsuid, never an error code


def _c_string(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _enter_namespaces(native: _Native, wanted: bool) -> dict[str, Any]:
    """Launcher: new PID and network namespaces for the server it forks next (user ns if needed)."""
    if not wanted or not sys.platform.startswith("linux"):
        return {}
    try:
        native.unshare(CLONE_NEWPID | CLONE_NEWNET)
        return {"pid_namespace": True, "net_namespace": True}
    except OSError:
        pass
    if os.geteuid() == 0:
        return {}
    uid, gid = os.getuid(), os.getgid()
    try:
        native.unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
    except OSError:
        return {}
    try:  # map ourselves to root inside, so mounts and file ownership work
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as exc:
        print(f"siked sandbox: cannot map uid {uid} in the user namespace: {exc}", file=sys.stderr)
    return {"pid_namespace": True, "net_namespace": True, "user_namespace": True}


def _private_mounts(native: _Native, root: str, isolation: dict[str, Any]) -> None:
    """Server: own mount namespace, private /proc, read-only everything, tmpfs for programs."""
    try:
        native.unshare(CLONE_NEWNS)
        native.mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    except OSError:
        return
    isolation["mount_namespace"] = True
    for key, step in (
        ("private_proc", lambda: native.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)),
        ("readonly_root", lambda: native.make_readonly_recursive("/")),
        ("private_tmp", lambda: native.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                             TMPFS_OPTIONS)),
    ):
        try:
            step()
            isolation[key] = True
        except OSError as exc:
            isolation[key] = False
            print(f"siked sandbox: {key} unavailable: {exc}", file=sys.stderr)


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        return found
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without the children file: scan stat
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _kill_all_children(as_namespace_init: bool, patience_s: float = 5.0) -> None:
    """SIGKILL and reap every remaining child; orphans of children reparent to us (we are PID 1
    of the namespace or a subreaper), so when no child is left no descendant is left."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if as_namespace_init and os.getpid() == 1:
            _kill(-1)  # PID 1 of a namespace: everyone else in it
        else:
            for child in _children_of(os.getpid()):
                _kill(child)
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------
# Worker side: launcher, server, program
# ---------------------------------------------------------------------------------------------


def _launcher_main(settings: dict[str, Any]) -> None:
    """Entry point of a worker process (`python -I sandbox.py SETTINGS`)."""
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    caller = os.getppid()
    root = tempfile.mkdtemp(dir=settings["base_dir"], prefix="worker-")
    native = _Native()
    isolation = _enter_namespaces(native, settings["namespaces"])
    if not isolation.get("pid_namespace"):
        native.prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a dead server come to us
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM})
    server = os.fork()
    if server == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGTERM})
        status = 1
        try:
            native.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            worker = _Server(settings, root, isolation, native, devnull, requests, replies)
            del native  # the server holds the only reference; programs drop it
            worker.serve()
            status = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(status)
    for fd in (requests, replies):
        os.close(fd)
    status = _supervise(server, caller)
    _kill_all_children(as_namespace_init=False)
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    try:
        os.rmdir(settings["base_dir"])  # the last worker out removes the pool's directory
    except OSError:
        pass
    os._exit(status)


def _supervise(server: int, caller: int) -> int:
    """Wait for the server; kill it on SIGTERM or when the caller has gone."""
    while True:
        info = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM}, 0.5)
        if (info is not None and info.si_signo == signal.SIGTERM) or os.getppid() != caller:
            _kill(server)
            os.waitpid(server, 0)
            return 1
        pid, status = os.waitpid(server, os.WNOHANG)
        if pid:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


class _Server:
    """Imports the prelude once, then forks one process per program."""

    def __init__(self, settings: dict[str, Any], root: str, isolation: dict[str, Any],
                 native: _Native, devnull: int, requests: int, replies: int) -> None:
        self.root = root
        self.isolation = isolation
        self.native: _Native | None = native
        self.devnull, self.requests, self.replies = devnull, requests, replies
        self.cpu_s = int(settings["cpu_s"])
        self.max_output = int(settings["max_output_bytes"])
        self.counter = 0
        self.namespace_init = bool(isolation.get("pid_namespace")) and os.getpid() == 1
        if self.namespace_init:
            _private_mounts(native, root, isolation)
        else:
            native.prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.run_as_nobody = os.geteuid() == 0 and not isolation.get("user_namespace")
        isolation["unprivileged_uid"] = self.run_as_nobody
        self.kind = settings["prelude"]
        self.globals = self._load_prelude(self.kind)
        self.memory = self._memory_limit(int(settings["memory_mb"]))
        self.limits = self._program_limits()
        self.raw_fork = threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1
        isolation["fast_fork"] = self.raw_fork
        # Set once here rather than in every forked program: programs write through these
        # streams to fds 1 and 2 (which they point at the output pipe), line by line so that a
        # killed program's output up to its last line is kept; an oversized file write raises
        # instead of killing the program.
        sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
        sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        import gc

        gc.collect()
        gc.freeze()  # forked programs then never touch (copy) the prelude's objects when collecting

    def _load_prelude(self, kind: str) -> dict[str, Any]:
        """The globals programs start from: nothing ("bare"), the base prelude, or all of it."""
        import builtins

        loaded: dict[str, Any] = {"__name__": "__sandbox_prelude__", "__builtins__": builtins}
        if kind != "bare":
            exec(compile(BASE_PRELUDE, "<prelude>", "exec"), loaded)
            exec(compile(_BASE_WARMUP, "<warmup>", "exec"), dict(loaded))
        if kind == "sympy":
            exec(compile(SYMPY_PRELUDE, "<prelude>", "exec"), loaded)
            exec(compile(_SYMPY_WARMUP, "<warmup>", "exec"), dict(loaded))
        loaded["__name__"] = "__main__"
        return loaded

    def _memory_limit(self, memory_mb: int) -> int:
        """RLIMIT_AS for programs; never below what the warm interpreter maps already + 64 MB."""
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        floor = mapped + 64 * 1024 * 1024
        if memory_mb * 1024 * 1024 < floor:
            self.isolation["memory_mb_raised_to"] = floor // (1024 * 1024)
        return max(memory_mb * 1024 * 1024, floor)

    def _program_limits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) for every program, clamped to the server's own hard limits."""
        import resource

        wanted = {
            resource.RLIMIT_CORE: 0,
            resource.RLIMIT_CPU: self.cpu_s,
            resource.RLIMIT_AS: self.memory,
            resource.RLIMIT_FSIZE: FILE_SIZE_LIMIT,
            resource.RLIMIT_NOFILE: OPEN_FILES_LIMIT,
            resource.RLIMIT_NPROC: 0,  # counted per non-root user: no fork, no threads
        }
        limits = []
        for which, soft in wanted.items():
            _, current_hard = resource.getrlimit(which)
            hard = soft + 1 if which == resource.RLIMIT_CPU else soft  # SIGXCPU, then SIGKILL
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            limits.append((which, (soft, hard)))
        return limits

    def serve(self) -> None:
        _write_frame(self.replies, {"ready": True, "isolation": self.isolation})
        while True:
            try:
                (size,) = _FRAME_HEADER.unpack(_read_exact(self.requests, _FRAME_HEADER.size))
                if size > _MAX_FRAME:
                    return
                request = json.loads(_read_exact(self.requests, size))
            except EOFError:  # the caller closed the pool or died
                return
            reply = self.run_program(str(request["code"]), float(request["timeout_s"]))
            _write_frame(self.replies, reply)

    def run_program(self, code: str, timeout: float) -> dict[str, Any]:
        self.counter += 1
        workdir = os.path.join(self.root, f"p{self.counter}")
        os.mkdir(workdir, 0o700)
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        started = time.monotonic()
        try:
            pid = self.native.fork() if self.raw_fork and self.native else os.fork()
        except OSError as exc:
            for fd in (result_r, result_w, output_r, output_w):
                os.close(fd)
            os.rmdir(workdir)
            return {"status": "error", "answer": None, "answer_float": None, "stdout": "",
                    "error": f"sandbox: cannot fork: {exc}", "seconds": 0.0}
        if pid == 0:
            self._program_process(code, workdir, result_w, output_w)
        os.close(result_w)
        os.close(output_w)
        try:
            collected = _Collector(pid, result_r, output_r, self.max_output)
            timed_out = not collected.wait(started + timeout)
            if timed_out:
                self._kill_program(pid)
            _, status = os.waitpid(pid, 0)
            seconds = time.monotonic() - started
            _kill_all_children(self.namespace_init)
            collected.drain()
        finally:
            os.close(result_r)
            os.close(output_r)
            _remove_tree(workdir)
        reply = _verdict(collected.result_bytes(), status, timed_out, self.kind == "base")
        reply["stdout"] = collected.output_text()
        reply["seconds"] = seconds
        return reply

    def _kill_program(self, pid: int) -> None:
        _kill(pid)
        if self.namespace_init:
            _kill(-1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _program_process(self, code: str, workdir: str, result_w: int, output_w: int) -> None:
        """The forked child: confine itself, run the program, report on fd 3, exit.

        Whatever the program replaces (os._exit, json, builtins), this process never returns into
        the server's code: the exit function is bound before the program runs and called in
        `finally`. A program that sabotages its own report only earns itself an error verdict.
        """
        exit_now, write = os._exit, os.write
        report_fd = result_w
        try:
            try:
                if self.raw_fork:
                    _reseed_random()
                os.dup2(result_w, 3)
                report_fd = 3
                self._confine(workdir, output_w)
                reply = _execute(code, dict(self.globals), self.memory, self.kind == "base")
            except BaseException as exc:  # noqa: BLE001 - everything becomes a verdict
                reply = {"status": "error", "error": f"sandbox setup failed: {_describe(exc)}"}
            data = json.dumps(reply).encode("utf-8")
            while data:
                data = data[write(report_fd, data) :]
        finally:
            exit_now(0)

    def _confine(self, workdir: str, output_w: int) -> None:
        """Called with the result pipe on fd 3; ends with the audit hook installed."""
        os.setsid()
        os.dup2(self.devnull, 0)
        os.dup2(output_w, 1)
        os.dup2(output_w, 2)
        os.closerange(4, 1 << 16)
        os.chdir(workdir)
        tempfile.tempdir = workdir  # the environment is the launcher's minimal one already
        self._set_limits()
        self._drop_privileges()
        sys.argv = ["program"]
        _forget_unaudited_functions()
        self.native = None
        _install_guard(workdir)

    def _set_limits(self) -> None:
        import resource  # already imported by the server: no file access here

        for which, soft_hard in self.limits:
            resource.setrlimit(which, soft_hard)

    def _drop_privileges(self) -> None:
        native = self.native
        assert native is not None
        if self.run_as_nobody:
            # Real, effective and saved uid become 65534 (RLIMIT_NPROC applies, root's processes
            # cannot be signalled); the file-system uid stays 0 so that a root-only Python install
            # still imports and the working directory is writable. Then every capability goes:
            # outside the working directory the file system is read-only (private mounts), so
            # file ownership grants no writes there.
            native.prctl(PR_SET_KEEPCAPS, 1)
            os.setgroups([])
            os.setresgid(UNPRIVILEGED_UID, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            os.setresuid(UNPRIVILEGED_UID, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            native.set_capabilities(1 << CAP_SETUID)
            native.setfsuid(0)
            native.set_capabilities(0)
        elif os.geteuid() == 0:  # root inside a user namespace: drop the namespace's capabilities
            native.set_capabilities(0)
        native.prctl(PR_SET_NO_NEW_PRIVS, 1)


class _Collector:
    """Server side of one running program: its output (capped), its result, its exit."""

    def __init__(self, pid: int, result_r: int, output_r: int, max_output: int) -> None:
        self.pid = pid
        self.result_r, self.output_r = result_r, output_r
        self.max_output = max_output
        self.result = bytearray()
        self.output = bytearray()
        self.output_dropped = 0
        for fd in (result_r, output_r):
            os.set_blocking(fd, False)
        self.poller = select.poll()
        self.open_fds = {result_r, output_r}
        for fd in self.open_fds:
            self.poller.register(fd, select.POLLIN)
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):
            self.pidfd = None

    def wait(self, deadline: float) -> bool:
        """Collect until the program exits (True) or the deadline passes (False)."""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                slice_s = remaining if self.pidfd is not None else min(remaining, 0.005)
                for fd, _ in self.poller.poll(slice_s * 1000):
                    if fd == self.pidfd:
                        return True
                    self._read(fd)
                if self.pidfd is None and _has_exited(self.pid):
                    return True
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)

    def drain(self) -> None:
        for fd in list(self.open_fds):
            while fd in self.open_fds and self._read(fd):
                pass

    def _read(self, fd: int) -> bool:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self.open_fds.discard(fd)
            self.poller.unregister(fd)
            return False
        if fd == self.result_r:
            if len(self.result) < 1 << 20:
                self.result += chunk
        else:
            room = self.max_output - len(self.output)
            self.output += chunk[: max(room, 0)]
            self.output_dropped += max(len(chunk) - max(room, 0), 0)
        return True

    def result_bytes(self) -> bytes:
        return bytes(self.result)

    def output_text(self) -> str:
        text = self.output.decode("utf-8", errors="replace")
        if self.output_dropped:
            text += f"\n[... {self.output_dropped} more bytes of output not kept]"
        return text


def _has_exited(pid: int) -> bool:
    """Without pidfd: peek whether the child has exited, leaving it to be reaped by waitpid."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _remove_tree(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        import shutil

        def make_writable_and_retry(func: Callable[..., Any], p: str, _exc: Any) -> None:
            os.chmod(os.path.dirname(p), 0o700)  # a program may have chmod-ed its files to 000
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)

        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable_and_retry)
        else:
            shutil.rmtree(path, onerror=make_writable_and_retry)


_SIGNAL_REASONS = {
    signal.SIGXCPU: "killed: cpu time limit",
    signal.SIGKILL: "killed: SIGKILL (cpu or memory limit)",
    signal.SIGSEGV: "killed: SIGSEGV (crash, e.g. stack overflow or out of memory)",
}


def _verdict(result: bytes, status: int, timed_out: bool, base: bool) -> dict[str, Any]:
    """The server's reply for one finished program (`base`: on a worker without sympy)."""
    if timed_out:
        return {"status": "timeout", "answer": None, "answer_float": None, "error": "killed: timeout"}
    if result:
        reply = _parse_report(result, base)
        if reply is not None:
            return reply
        error = "sandbox: malformed result (the program wrote to the result channel)"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        error = _SIGNAL_REASONS.get(sig) or f"killed: signal {sig}"
    else:
        error = f"exited with status {os.waitstatus_to_exitcode(status)} before finishing (os._exit?)"
    return {"status": "error", "answer": None, "answer_float": None, "error": error}


def _parse_report(data: bytes, base: bool) -> dict[str, Any] | None:
    """The program process's report, checked field by field (a program can write to its fd 3;
    forging "needs_sympy" on a base worker only earns it a rerun on a sympy worker)."""
    try:
        report = json.loads(data)
    except ValueError:
        return None
    statuses = ("ok", "no_answer", "error", "needs_sympy") if base else ("ok", "no_answer", "error")
    if not isinstance(report, dict) or report.get("status") not in statuses:
        return None
    answer, number, error = report.get("answer"), report.get("answer_float"), report.get("error")
    if not (answer is None or isinstance(answer, str)) or not (error is None or isinstance(error, str)):
        return None
    if not (number is None or (isinstance(number, (int, float)) and not isinstance(number, bool))):
        return None
    return {"status": report["status"], "answer": None if answer is None else answer[:ANSWER_CHARS],
            "answer_float": None if number is None else float(number),
            "error": None if error is None else error[:ERROR_CHARS]}


# ---------------------------------------------------------------------------------------------
# Inside the program process
# ---------------------------------------------------------------------------------------------


def _execute(code: str, scope: dict[str, Any], memory: int, base: bool) -> dict[str, Any]:
    """Run the program in `scope`; the reply for its `answer` (`base`: a worker without sympy)."""
    try:
        exec(compile(code, "<program>", "exec"), scope)
    except MemoryError:
        return {"status": "error", "error": f"killed: memory (limit {memory // 2**20} MB)"}
    except NameError as exc:
        if base and isinstance(exc.name, str) and exc.name in SYMPY_NAMES:
            return {"status": "needs_sympy", "answer": None, "answer_float": None, "error": None}
        return {"status": "error", "error": _describe(exc)}
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all verdicts
        return {"status": "error", "error": _describe(exc)}
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
    if "answer" not in scope:
        return {"status": "no_answer", "answer": None, "answer_float": None, "error": None}
    value = scope["answer"]
    try:
        text = str(value)
    except BaseException as exc:  # noqa: BLE001 - e.g. an int too long to print
        return {"status": "error", "error": f"answer cannot be printed: {_describe(exc)}"}
    return {"status": "ok", "answer": text[:ANSWER_CHARS], "answer_float": _as_float(value),
            "error": None}


def _as_float(value: Any) -> float | None:
    if isinstance(value, (str, bytes, bytearray, bool)):
        return None
    try:
        return float(value)
    except BaseException:  # noqa: BLE001 - any object may raise anything
        return None


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc.msg if isinstance(exc, SyntaxError) else exc)
    except BaseException:  # noqa: BLE001
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is not None:
        text += f" (line {line})"
    return text[:ERROR_CHARS]


def _reseed_random() -> None:
    """What os.fork's at-fork handler does: forked programs must not share one random stream."""
    random_module = sys.modules.get("random")
    if random_module is not None:
        random_module.seed()


def _forget_unaudited_functions() -> None:
    """Remove what raises no audit event but spawns processes or creates files: native-call
    modules become unreachable by name (the audit hook refuses re-importing them), and
    os.mkfifo / os.mknod disappear."""
    for name in _DENIED_IMPORTS:
        sys.modules.pop(name, None)
    subprocess_module = sys.modules.get("subprocess")
    if subprocess_module is not None:
        subprocess_module._posixsubprocess = None  # type: ignore[attr-defined]
    for module in (os, sys.modules.get("posix")):
        for name in ("mkfifo", "mknod"):
            if module is not None and hasattr(module, name):
                delattr(module, name)


_DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "os.symlink", "os.link", "os.startfile", "subprocess.Popen", "pty.spawn",
    "resource.setrlimit", "resource.prlimit", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "fcntl.ioctl", "webbrowser.open", "sqlite3.connect",
})
_DENIED_PREFIXES = ("socket.", "ctypes.", "syslog.", "http.client.", "urllib.", "ftplib.",
                    "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.")
_DENIED_IMPORTS = frozenset({  # C modules that act without audit events
    "_posixsubprocess", "ctypes", "_ctypes", "_xxsubinterpreters", "_testcapi", "_testinternalcapi",
    "_posixshmem", "readline", "_sqlite3", "_dbm", "_gdbm",
})
_PATH_EVENTS = {  # event -> positions of path arguments that must stay inside the directory
    "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
    "os.chflags": (0,), "os.lchflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "os.chdir": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.copymode": (1,),
    "shutil.copystat": (1,), "shutil.copytree": (1,), "shutil.move": (1,),
}


def _install_guard(workdir: str) -> None:
    """Audit hook of the program process (defence in depth; the real limits are set already)."""
    workdir = os.path.normpath(workdir)
    try:
        own_proc_entry = os.readlink("/proc/self")
    except OSError:
        own_proc_entry = str(os.getpid())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def resolve(path: Any) -> str | None:
        if isinstance(path, int):
            try:
                return os.readlink(f"/proc/self/fd/{path}")
            except OSError:
                return None
        try:
            return os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path)))
        except (TypeError, ValueError, OSError):
            return None

    def inside(path: Any) -> bool:
        full = resolve(path)
        return full is not None and (full == workdir or full.startswith(workdir + os.sep))

    def other_process_entry(path: Any) -> bool:
        full = resolve(path) if not isinstance(path, int) else None
        if full is None or not full.startswith("/proc/"):
            return False
        entry = full.split("/")[2]
        return entry.isdigit() and entry != own_proc_entry

    def deny(event: str) -> None:
        raise PermissionError(f"sandbox: {event} is not allowed")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _DENIED_EVENTS or event.startswith(_DENIED_PREFIXES):
            deny(event)
        elif event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = mode is None or bool((flags or 0) & write_flags)  # os.open: always checked
            if (writing and not inside(path)) or other_process_entry(path):
                deny(f"open({path!r})")
        elif event in _PATH_EVENTS:
            for position in _PATH_EVENTS[event]:
                if position < len(args) and args[position] is not None and not inside(args[position]):
                    deny(f"{event}({args[position]!r})")
        elif event == "import" and args and args[0] in _DENIED_IMPORTS:
            # ImportError, not PermissionError: libraries guard optional imports (numpy: ctypes)
            raise ImportError(f"sandbox: import {args[0]} is not allowed")

    sys.addaudithook(hook)


if __name__ == "__main__":
    _launcher_main(json.loads(sys.argv[1]))
