"""The worker process: the launcher (namespaces, supervision) and the server (PID 1 of its PID
namespace: imports the prelude once, forks one process per program, collects its result)."""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .guard import forget_unaudited_functions, install_guard
from .namespaces import (
    CAP_SETUID,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    Native,
    enter_namespaces,
    kill,
    kill_all_children,
    private_mounts,
)
from .prelude import BASE_PRELUDE, BASE_WARMUP, SYMPY_PRELUDE, SYMPY_WARMUP
from .program import describe, execute, reseed_random
from .protocol import (
    ANSWER_CHARS,
    ERROR_CHARS,
    FILE_SIZE_LIMIT,
    FRAME_HEADER,
    MAX_FRAME,
    OPEN_FILES_LIMIT,
    UNPRIVILEGED_UID,
    read_exact,
    write_frame,
)


def _launcher_main(settings: dict[str, Any]) -> None:
    """Entry point of a worker process (`python -I sandbox.py SETTINGS`)."""
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    caller = os.getppid()
    root = tempfile.mkdtemp(dir=settings["base_dir"], prefix="worker-")
    native = Native()
    isolation = enter_namespaces(native, settings["namespaces"])
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
    kill_all_children(as_namespace_init=False)
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
            kill(server)
            os.waitpid(server, 0)
            return 1
        pid, status = os.waitpid(server, os.WNOHANG)
        if pid:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


class _Server:
    """Imports the prelude once, then forks one process per program."""

    def __init__(self, settings: dict[str, Any], root: str, isolation: dict[str, Any],
                 native: Native, devnull: int, requests: int, replies: int) -> None:
        self.root = root
        self.isolation = isolation
        self.native: Native | None = native
        self.devnull, self.requests, self.replies = devnull, requests, replies
        self.cpu_s = int(settings["cpu_s"])
        self.max_output = int(settings["max_output_bytes"])
        self.counter = 0
        self.namespace_init = bool(isolation.get("pid_namespace")) and os.getpid() == 1
        if self.namespace_init:
            private_mounts(native, root, isolation)
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

        loaded: dict[str, Any] = {"__name__": "__sandbox_prelude__", "__builtins__": builtins}
        if kind != "bare":
            exec(compile(BASE_PRELUDE, "<prelude>", "exec"), loaded)
            exec(compile(BASE_WARMUP, "<warmup>", "exec"), dict(loaded))
        if kind == "sympy":
            exec(compile(SYMPY_PRELUDE, "<prelude>", "exec"), loaded)
            exec(compile(SYMPY_WARMUP, "<warmup>", "exec"), dict(loaded))
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
        write_frame(self.replies, {"ready": True, "isolation": self.isolation})
        while True:
            try:
                (size,) = FRAME_HEADER.unpack(read_exact(self.requests, FRAME_HEADER.size))
                if size > MAX_FRAME:
                    return
                request = json.loads(read_exact(self.requests, size))
            except EOFError:  # the caller closed the pool or died
                return
            reply = self.run_program(str(request["code"]), float(request["timeout_s"]))
            write_frame(self.replies, reply)

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
            kill_all_children(self.namespace_init)
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
        kill(pid)
        if self.namespace_init:
            kill(-1)
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
                    reseed_random()
                os.dup2(result_w, 3)
                report_fd = 3
                self._confine(workdir, output_w)
                reply = execute(code, dict(self.globals), self.memory, self.kind == "base")
            except BaseException as exc:  # noqa: BLE001 - everything becomes a verdict
                reply = {"status": "error", "error": f"sandbox setup failed: {describe(exc)}"}
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
        forget_unaudited_functions()
        self.native = None
        install_guard(workdir)

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



def main() -> None:
    """Entry point of a worker process (see `siked.sandbox.pool.WORKER_COMMAND`)."""
    _launcher_main(json.loads(sys.argv[1]))
