"""`siked run` with its heavy stages in child processes: torch stays out of the loop's process, a
failed or killed stage is a clear error and reruns on resume, and training runs on 2 processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_RUN, terminal_noise
from siked.config import load_config
from siked.loop import run
from siked.stages import LOG

pytestmark = pytest.mark.slow

SMALL = [*TINY_RUN, "loop.max_iterations=1", "loop.report=false", "loop.stage_processes=true"]


def done_stages(run_dir: Path) -> dict[str, str]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {name: s["finished"] for name, s in manifest["stages"].items() if s["status"] == "done"}


def cli_run(out: Path, *overrides: str) -> list[str]:
    args = [sys.executable, "-m", "siked.cli", "run", "--out", str(out)]
    for item in [*SMALL, *overrides]:
        args += ["--set", item]
    return args


@pytest.mark.long  # tests/test_crash_anywhere.py checks the loop's memory for torch at each of its kills
def test_the_loop_process_never_imports_torch(model_cache: Path, tmp_path: Path) -> None:
    """Training, evaluation, sampling and routing all ran, each in a child; the loop stayed torch-free
    (neither torch nor transformers in its modules)."""
    out = tmp_path / "run"
    overrides = [*SMALL, "loop.max_iterations=2", "loop.routing=true"]
    code = ("import sys; from siked.config import load_config; from siked.loop import run; "
            f"run(load_config(None, {[f'out={out}', *overrides]!r})); "
            "print('TORCH', 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TORCH False False" in done.stdout
    stages = done_stages(out)
    for stage in ("teacher", "iter1/train", "iter1/eval", "iter1/sample", "iter2/train", "iter2/eval", "routing"):
        assert stage in stages
        assert (out / stage / LOG).is_file() and (out / stage / "result.json").is_file()
    assert "accuracy" in (out / "iter1" / "eval" / LOG).read_text()  # the child's own console output
    assert json.loads((out / "routing.json").read_text())["gsm_symbolic:test"]["questions"] == 2


def test_a_failing_stage_names_itself_and_its_log_and_the_cli_says_so_on_one_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(cli_run(out, f"student.model={tmp_path / 'no-such-model'}"), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 2
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: stage iter1/train failed (exit status ")
    assert "no-such-model" in error and f"full log: {out / 'iter1' / 'train' / LOG}" in error
    stages = done_stages(out)
    assert {"data", "teacher", "iter1/mix"} <= set(stages) and "iter1/train" not in stages


def test_a_killed_stage_child_loses_only_its_stage_which_reruns_on_resume(model_cache: Path, tmp_path: Path) -> None:
    import psutil

    out = tmp_path / "run"
    console = tmp_path / "console.txt"
    with console.open("w") as sink:
        loop = subprocess.Popen(cli_run(out), stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 600
        worker = None
        while worker is None and time.monotonic() < deadline and loop.poll() is None:
            if (out / "iter1" / "train" / "request.json").exists():
                worker = next((c for c in psutil.Process(loop.pid).children(recursive=True)
                               if "siked.stage_worker" in " ".join(c.cmdline())), None)
            time.sleep(0.2)
        assert worker is not None, "the training stage's child never started"
        time.sleep(3)  # let it load the model: its memory is what it takes with it
        os.kill(worker.pid, signal.SIGKILL)
        loop.wait(timeout=120)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    assert loop.returncode == 2
    assert "error: stage iter1/train was killed by SIGKILL (out of memory?)" in console.read_text()
    before = done_stages(out)
    assert {"data", "teacher", "iter1/mix"} <= set(before) and "iter1/train" not in before

    run(load_config(None, [f"out={out}", *SMALL]))
    after = done_stages(out)
    assert {k: after[k] for k in before} == before  # nothing finished was redone
    assert {"iter1/train", "iter1/eval"} <= set(after)
    assert (out / "iter1" / "train" / LOG).read_text().count("=== ") == 2  # both attempts in one log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.long  # in CI, tests/test_vllm_loop.py launches every training stage of its run on 2 processes
def test_siked_run_launches_its_training_stage_on_two_processes(model_cache: Path, tmp_path: Path) -> None:
    """What `train.launcher.num_processes=2` does on a 2-GPU node, on CPU: accelerate launch, gloo DDP."""
    out = tmp_path / "run"
    # OMP_NUM_THREADS unset, as on a user's shell: siked sets it per process (torch's launcher would warn)
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    done = subprocess.run(cli_run(out, "train.launcher.num_processes=2", f"train.launcher.main_process_port={free_port()}",
                                  "train.per_device_batch_size=1"), capture_output=True, text=True, env=env,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    train = manifest["stages"]["iter1/train"]["info"]
    assert train["processes"] == 2 and train["steps"] == 2
    log = (out / "iter1" / "train" / LOG).read_text()
    assert "accelerate.commands.launch --num_processes 2" in log
    assert not terminal_noise(done.stdout + done.stderr)  # DDP's C++ warnings stay in the log
    assert manifest["stages"]["iter1/eval"]["status"] == "done"
    assert json.loads((out / "metrics.json").read_text())["iterations"][0]["train"]["processes"] == 2
