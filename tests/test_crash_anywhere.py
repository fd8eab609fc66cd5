"""`siked run` killed with SIGKILL at many points, every stage kind, and rerun each time, ends as an
uninterrupted run does: every stage done once, every artifact whole. Its terminal, over every
attempt, shows siked's own lines only.

The kills are progressive, on one run directory: the run is killed at point 1, rerun until point 2
and killed, and so on, so the whole costs about one run plus the partial stages done twice. The
uninterrupted run runs alongside, its stages in its own process (`loop.stage_processes` is an
operational setting: it changes no artifact), which spares a dozen torch imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import terminal_noise
from siked.rundir import stale_staging

pytestmark = pytest.mark.slow

CRASH_RUN = [
    "data.train={name: gsm_symbolic, split: train, limit: 4}",
    "data.evaluation=[{name: gsm_symbolic, split: test, limit: 1}]",
    "data.validation_fraction=0.1",
    "train.max_steps=1",
    "train.max_length=320",
    "train.per_device_batch_size=1",
    "train.gradient_accumulation_steps=1",
    "generation.samples=1",
    "generation.max_new_tokens=4",
    "generation.eval_max_new_tokens=4",
    "mixing.line=paper",
    "loop.max_iterations=2",
    "loop.patience=0",
    "loop.routing=true",
    "loop.baselines=[pot]",
    "loop.budget=equal_steps",
]
"""Every stage kind at the smallest sizes: 4 questions, 3 to train on and 1 to validate (drawn from
every template: checking a template list imports reasoning-gym in every child), one step per
iteration, a pot baseline with snapshots at SIKeD's steps, routing and the report."""

STAGES = ["data", "teacher", "iter1/mix", "iter1/train", "iter1/eval", "iter1/sample", "iter2/mix",
          "iter2/train", "iter2/eval", "baselines/pot/mix", "baselines/pot/train", "baselines/pot/step-1/eval",
          "baselines/pot/step-2/eval", "baselines/pot/eval", "routing"]
RUN_TIMEOUT_S = 900


def start_run(out: Path, console: Path, cache: Path, *overrides: str) -> subprocess.Popen:
    """`siked run` as a user starts it, in a session of its own so that one signal reaches the loop."""
    command = [sys.executable, "-m", "siked.cli", "run", "--out", str(out)]
    for item in [*CRASH_RUN, *overrides]:
        command += ["--set", item]
    # two runs side by side on the test's cores: one thread each instead of both fighting for two
    env = {**os.environ, "SIKED_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    with console.open("ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


# -- reading a run directory while it runs ----------------------------------------------------------


def stages(out: Path) -> dict[str, dict]:
    try:
        return json.loads((out / "manifest.json").read_text())["stages"]
    except (OSError, ValueError):  # not written yet
        return {}


def done(out: Path) -> dict[str, str]:
    """Each done stage's finish time: a stage done again would change it."""
    return {name: entry["finished"] for name, entry in stages(out).items() if entry["status"] == "done"}


@dataclass
class KillPoint:
    stage: str
    """The stage the kill is meant to land in."""
    why: str
    reached: Callable[[Path, dict[str, int]], bool]
    """(run directory, each log's size when this attempt started) -> kill now?"""
    delay_s: float = 0.0
    fast: bool = False
    """The stage may be over before the test sees it (it takes milliseconds): the kill lands later."""


def started(stage: str) -> Callable[[Path, dict[str, int]], bool]:
    return lambda out, _: stage in stages(out)


def running(stage: str) -> Callable[[Path, dict[str, int]], bool]:
    return lambda out, _: stages(out).get(stage, {}).get("status") == "running"


def log_shows(stage: str, text: str) -> Callable[[Path, dict[str, int]], bool]:
    """The stage's log shows `text` in this attempt (earlier attempts' lines are in the same file)."""

    def reached(out: Path, sizes: dict[str, int]) -> bool:
        log = out / stage / "log.txt"
        if not log.is_file():
            return False
        with log.open("rb") as handle:
            handle.seek(sizes.get(stage, 0))
            return text.encode() in handle.read()

    return reached


def exists(name: str) -> Callable[[Path, dict[str, int]], bool]:
    return lambda out, _: (out / name).exists()


KILL_POINTS = [
    KillPoint("data", "started", started("data"), fast=True),
    KillPoint("teacher", "its child solving the questions", log_shows("teacher", "reference solutions")),
    KillPoint("iter1/mix", "started", started("iter1/mix"), fast=True),
    KillPoint("iter1/train", "after a training step", log_shows("iter1/train", "step 1/1")),
    KillPoint("iter1/eval", "one set written, one to go", log_shows("iter1/eval", "validation: accuracy")),
    KillPoint("iter1/sample", "its child starting", running("iter1/sample")),
    KillPoint("iter2/train", "its child starting", running("iter2/train")),
    KillPoint("baselines/pot/train", "after step 1 of 2 (the step-1 snapshot)",
              log_shows("baselines/pot/train", "step 1/2")),
    KillPoint("baselines/pot/step-1/eval", "snapshot evaluation starting", running("baselines/pot/step-1/eval")),
    KillPoint("routing", "forced decoding under way", log_shows("routing", "sampling")),
    KillPoint("report", "metrics.json written, the report being drawn", exists("metrics.json"), fast=True),
]


def log_sizes(out: Path) -> dict[str, int]:
    return {str(log.parent.relative_to(out)): log.stat().st_size for log in out.rglob("log.txt")}


def run_until(point: KillPoint, out: Path, console: Path, cache: Path) -> str | None:
    """Rerun the killed run and SIGKILL it (its whole process group) at `point`; returns the stage
    running when the kill landed."""
    import psutil

    sizes = log_sizes(out)
    loop = start_run(out, console, cache)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not point.reached(out, sizes):
        assert loop.poll() is None, f"the run ended (status {loop.returncode}) before {point.stage}: {point.why}"
        assert time.monotonic() < deadline, f"{point.stage} ({point.why}) never came"
        time.sleep(0.02)
    time.sleep(point.delay_s)
    family = psutil.Process(loop.pid).children(recursive=True)
    in_flight = next((name for name, entry in stages(out).items() if entry["status"] == "running"), None)
    # the loop itself stays torch-free: every heavy stage runs in a child, which takes its memory along
    assert "libtorch" not in Path(f"/proc/{loop.pid}/maps").read_text(), f"the loop loaded torch by {point.stage}"
    os.killpg(loop.pid, signal.SIGKILL)
    assert loop.wait() == -signal.SIGKILL
    _, alive = psutil.wait_procs(family, timeout=15)  # the stage children die with the loop
    assert not alive, f"killed at {point.stage}: {[p.cmdline() for p in alive]} outlived the loop"
    return in_flight


def run_to_the_end(out: Path, console: Path, cache: Path) -> int:
    rerun = start_run(out, console, cache)
    try:
        return rerun.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if rerun.poll() is None:
            os.killpg(rerun.pid, signal.SIGKILL)


def leave_half_written_teacher_file(out: Path) -> Path:
    """What a kill in the middle of writing teacher.jsonl leaves on disk (too short a moment to
    catch by watching): the staging file with a cut row, never renamed into place."""
    staging = out / "teacher" / ".teacher.jsonl.cut0kill"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text('{"problem_id": "gsm_symbolic/train/0", "strategy": "cot", "solu', encoding="utf-8")
    return staging


# -- the comparison -------------------------------------------------------------------------------


def jsonl_shape(run: Path) -> dict[str, tuple[int, Counter]]:
    """Each JSONL artifact's row count and problem ids (texts differ: bf16 CPU training is not
    bit-reproducible)."""
    shapes = {}
    for path in sorted(run.rglob("*.jsonl")):
        if path.name.startswith("."):
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        shapes[str(path.relative_to(run))] = (len(rows), Counter(row.get("problem_id", row.get("id")) for row in rows))
    return shapes


def teacher_rows(run: Path, name: str) -> list[tuple[str, str, int]]:
    rows = [json.loads(line) for line in (run / "teacher" / name).read_text().splitlines()]
    return sorted((row["problem_id"], row["strategy"], row["sample_index"]) for row in rows)


def metrics_shape(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    pot = metrics["baselines"]["pot"]
    return {"keys": sorted(metrics), "iterations": [sorted(it) for it in metrics["iterations"]],
            "checkpoints": [c["step"] for c in pot["checkpoints"]], "chosen": pot["chosen_step"] is not None,
            "routing": sorted(metrics["routing"]), "best": metrics["best_iteration"] is not None,
            "stopped": metrics["stopped"]}


def report_sections(run: Path) -> list[str]:
    text = (run / "report.md").read_text().replace(str(run), "RUN")
    return [line for line in text.splitlines() if line.startswith("#")]


def noisy_lines(console: Path) -> list[str]:
    return terminal_noise(console.read_text(encoding="utf-8", errors="replace"))


def test_a_run_killed_anywhere_and_rerun_ends_as_an_uninterrupted_run(model_cache: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    console = tmp_path / "killed.txt"
    uninterrupted = start_run(reference, tmp_path / "reference.txt", model_cache, "loop.stage_processes=false")
    cache = tmp_path / "cache"  # empty: the killed run's terminal shows the student's GGUF conversion too
    try:
        finished: dict[str, str] = {}
        landed = {}
        for point in KILL_POINTS:
            if point.stage == "teacher":
                leave_half_written_teacher_file(killed)
            landed[point.stage] = run_until(point, killed, console, cache)
            now_done = done(killed)
            assert {name: now_done.get(name) for name in finished} == finished, f"redone after {point.stage}"
            finished = now_done
            if not point.fast:
                assert landed[point.stage] == point.stage, landed
        assert run_to_the_end(killed, console, cache) == 0, console.read_text()[-3000:]
        assert uninterrupted.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "reference.txt").read_text()[-3000:]
    finally:
        if uninterrupted.poll() is None:
            os.killpg(uninterrupted.pid, signal.SIGKILL)
    print("kills landed in:", landed)

    after = done(killed)
    assert {name: after[name] for name in finished} == finished  # the last rerun redid nothing either
    assert sorted(after) == sorted(done(reference)) == sorted(STAGES)
    assert json.loads((killed / "manifest.json").read_text())["resumed"] == len(KILL_POINTS)
    assert jsonl_shape(killed) == jsonl_shape(reference)
    assert stale_staging(killed) == []  # the cut teacher file and whatever the kills cut short
    # the reference teacher sends no request (no completion log); each (question, strategy, sample) once
    for name in ("teacher.jsonl", "teacher_samples.jsonl"):
        rows = teacher_rows(killed, name)
        assert rows == teacher_rows(reference, name) and len(rows) == len(set(rows))
    assert not (killed / "teacher" / "teacher_completions.jsonl").exists()
    assert metrics_shape(killed) == metrics_shape(reference)
    assert report_sections(killed) == report_sections(reference)
    assert (killed / "report.html").stat().st_size > 0.5 * (reference / "report.html").stat().st_size

    # a default run's terminal: siked's lines, rich bars and tables, no library warning or raw tqdm bar
    assert "stage routing" in console.read_text() and (cache / "models").is_dir()  # the conversion ran here
    assert noisy_lines(console) == []
    # siked passes no argument its transformers deprecates (the logs would keep it, not the terminal)
    assert not [log for log in killed.rglob("log.txt") if "`past_key_values` is deprecated" in log.read_text()]
