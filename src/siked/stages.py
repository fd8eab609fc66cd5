"""Heavy stages of `siked run` in child processes.

The loop (the parent) never imports torch: it writes a stage request (the stage's name, the config
and its kind's arguments, as JSON) into the stage's folder and runs `python -m siked.stage_worker`
on it, or `accelerate launch ... -m siked.stage_worker` for a training stage on several
processes. The child loads the model, does the work, writes the stage's outputs and then
`result.json` atomically, and exits, handing every byte of CPU and GPU memory back. What the
libraries print in the child goes to the stage's `log.txt` only; siked's own lines and progress
bars are streamed to the console and appended to the log. A failure becomes a `StageError`
naming the stage, quoting the child's error (else the log's last line) and pointing at the log.

A child dies with the loop, even a SIGKILLed one (`siked.lifeline`), and runs in a process group
of its own, which is stopped as a whole when the loop is interrupted or the child ends, so that
no process of a stage outlives it to race a rerun.

The request and the result are typed (`siked.stage_requests`); the stage bodies are registered by
kind in `siked.stage_worker`, which imports this module (never the other way round); the loop runs a
body in-process through it when `loop.stage_processes` is false.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from siked.config import LauncherConfig
from siked.lifeline import PARENT_ENV, wrap
from siked.stage_requests import Info, StageArgs, StageError, StageRequest, read_result

REQUEST = "request.json"
RESULT = "result.json"
ERROR = "error.txt"
"""Why a stage failed (a `SikedError`'s message, or any other exception as `TypeName: message`),
written by its child instead of printing it, so that the loop shows it once, on its own `error:` line."""
LOG = "log.txt"
STOP_GRACE_S = 30
"""How long a stopped stage's processes get to exit after SIGTERM before they are killed."""


def launch_command(request_path: Path, launcher: LauncherConfig | None) -> list[str]:
    """The child's command line: plain Python, or `accelerate launch` over several processes."""
    worker = ["-m", "siked.stage_worker", str(request_path)]
    if launcher is None or launcher.num_processes == 1:
        return [sys.executable, *worker]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(launcher.num_processes)]
    if launcher.accelerate_config is not None:
        if not Path(launcher.accelerate_config).is_file():
            raise StageError(
                f"train.launcher.accelerate_config: {launcher.accelerate_config} does not exist "
                "(give a file such as configs/accelerate/ddp.yaml, or null for plain data parallelism)"
            )
        command += ["--config_file", str(launcher.accelerate_config)]
    else:
        # Data parallelism through torch.distributed; without GPUs the processes talk over gloo.
        command += ["--multi_gpu", "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no"]
    if launcher.main_process_port is not None:
        command += ["--main_process_port", str(launcher.main_process_port)]
    return [*command, *worker]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
PYDANTIC_LINK = re.compile(r"For further information visit https://errors\.pydantic\.dev")
"""The last line of a pydantic error, which says nothing of the error itself."""


def last_line(log: Path) -> str:
    """The log's last non-empty line without terminal control codes (usually the error)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 16384))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ANSI.sub("", line).strip() for line in tail.splitlines()]
    line = next((line for line in reversed(lines) if line and not PYDANTIC_LINK.match(line)), "")
    return line.removeprefix("error: ")  # the worker's own one-line errors


def failure_message(stage: str, returncode: int, log: Path, error: str | None = None) -> str:
    """One line naming the stage, why it ended and its log; the child's own error (its first line
    quoted, any detail lines after) or else the log's last line."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        why = f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        why = f"failed (exit status {returncode})"
    first, *details = (error or last_line(log)).splitlines() or [""]
    quoted = f": {first}" if first else ""
    line = f"stage {stage} {why}{quoted} -- full log: {log}; rerun the same command to resume at this stage"
    return "\n".join([line, *details])


def read_error(path: Path | None) -> str | None:
    """The child's own error message, if it left one."""
    if path is None or not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def child_environment(console_file: IO[str], processes: int = 1) -> dict[str, str]:
    env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    if processes > 1:  # torch's launcher would set 1 thread per process, warning on the terminal that it did
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // processes)))
    if console_file.isatty():  # the child's progress bars draw on the loop's terminal
        env.setdefault("TTY_COMPATIBLE", "1")
        env.setdefault("COLUMNS", str(os.get_terminal_size(console_file.fileno()).columns))
    return env


def stream(fd: int, sink: IO[bytes], console_file: IO[str]) -> None:
    """Copy the child's output to the log and the console until it closes it."""
    out = console_file.buffer if hasattr(console_file, "buffer") else None
    while chunk := os.read(fd, 65536):
        sink.write(chunk)
        sink.flush()
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            console_file.write(chunk.decode("utf-8", errors="replace"))
            console_file.flush()


def signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after `STOP_GRACE_S`."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()


def run_child(command: list[str], stage: str, log: Path, console_file: IO[str] | None = None,
              error_file: Path | None = None, processes: int = 1) -> None:
    """Run `command`, streaming its output to `console_file` and appending it to `log`; a child that
    fails with its own error message leaves it in `error_file`."""
    console_file = console_file or sys.stderr
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        sink.write(f"=== {stamp} stage {stage}: {' '.join(command)}\n".encode())
        sink.flush()
        process = subprocess.Popen(wrap(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=child_environment(console_file, processes),
                                   start_new_session=True)
        assert process.stdout is not None
        try:
            stream(process.stdout.fileno(), sink, console_file)
            returncode = process.wait()
        except BaseException:  # Ctrl-C, SIGTERM or an error in the loop: the stage's processes go too
            stop_group(process)
            raise
        finally:
            process.stdout.close()
            signal_group(process.pid, signal.SIGKILL)  # anything the stage left behind
    if returncode != 0:
        error = read_error(error_file)
        if error:
            with log.open("a", encoding="utf-8") as sink:
                sink.write(f"error: {error}\n")
        raise StageError(failure_message(stage, returncode, log, error))


def run_stage(request: StageRequest[StageArgs[Info]], stage_dir: Path, *, launcher: LauncherConfig | None = None,
              console: Any = None) -> tuple[list[Path], Info]:
    """Run one stage in a child process (several under `launcher`); returns its outputs and info."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    request_path, result_path = stage_dir / REQUEST, stage_dir / RESULT
    for earlier in (result_path, stage_dir / ERROR):  # an earlier, interrupted attempt's
        earlier.unlink(missing_ok=True)
    request.write(request_path)
    run_child(launch_command(request_path, launcher), str(request.stage), stage_dir / LOG,
              getattr(console, "file", None), error_file=stage_dir / ERROR,
              processes=launcher.num_processes if launcher is not None else 1)
    return read_result(result_path, request)
