"""The caller's side: `SandboxPool` (warm workers of each kind, routing each program to one,
replacing lost workers) and its handle on one worker process."""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from siked.errors import SikedError
from siked.sandbox.worker.prelude import SYMPY_NAMES, SYMPY_WORD
from siked.sandbox.worker.protocol import FRAME_HEADER, MAX_FRAME, read_exact, write_frame

if TYPE_CHECKING:
    from siked.config import SandboxConfig

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 120.0
"""How long a fresh worker may take to import the prelude (sympy) on a busy machine."""
REPLY_GRACE_S = 5.0
"""Extra time the caller grants a worker beyond the program's timeout before replacing it."""
MAX_TIMEOUT_S = 24 * 3600.0

WORKER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker")
WORKER_COMMAND = "\n".join([
    "import importlib.util, sys",
    f"spec = importlib.util.spec_from_file_location('siked_sandbox_worker', "
    f"{os.path.join(WORKER_DIR, '__init__.py')!r}, submodule_search_locations=[{WORKER_DIR!r}])",
    "package = importlib.util.module_from_spec(spec)",
    "sys.modules[spec.name] = package",
    "spec.loader.exec_module(package)",
    "from siked_sandbox_worker.launcher import main",
    "main()",
])
"""What a worker process runs: the worker package, loaded by path (siked itself is never imported there)."""
_WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


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

    try:
        after_dot = False
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.NAME and not after_dot and token.string in SYMPY_NAMES:
                return True
            after_dot = token.type == tokenize.OP and token.string == "."
        return False
    except (tokenize.TokenError, SyntaxError, ValueError):
        return SYMPY_WORD.search(code) is not None


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
    shutil.rmtree(base_dir, ignore_errors=True)


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
            [sys.executable, "-I", "-c", WORKER_COMMAND, json.dumps(settings)],
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
            write_frame(self._to_worker, {"code": code, "timeout_s": timeout})
        except OSError:
            raise _WorkerLost("error", "sandbox worker died") from None
        return self._receive(time.monotonic() + timeout + REPLY_GRACE_S)

    def _receive(self, deadline: float, startup: bool = False) -> dict[str, Any]:
        try:
            header = read_exact(self._from_worker, FRAME_HEADER.size, deadline, self._poller)
            (size,) = FRAME_HEADER.unpack(header)
            if size > MAX_FRAME:
                raise _WorkerLost("error", "sandbox worker sent a malformed reply")
            return json.loads(read_exact(self._from_worker, size, deadline, self._poller))
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

