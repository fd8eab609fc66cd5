"""The child side of a stage: `python -m siked.stage_worker RUN/<stage>/request.json`.

Each heavy stage of `siked run` is one registered body: it reads its inputs from the run
directory, loads what it needs (the student, the teacher, a sandbox pool to grade in), writes its
outputs atomically and returns them with the info the manifest records. The worker writes
`result.json` last (the main process only, under `accelerate launch`); the loop reads it and
marks the stage done. See `siked.stages` for the parent side.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from siked.config import CHECKED_BY_PARENT, SikedConfig
from siked.errors import SikedError, one_line
from siked.io import atomic_path, read_jsonl, write_json, write_jsonl
from siked.lifeline import PARENT_ENV, die_with_parent, watch_parent
from siked.metrics import (
    EvalInfo,
    EvalResult,
    RoutingInfo,
    SampleInfo,
    StageInfo,
    StudentStats,
    TeacherInfo,
    TrainInfo,
)
from siked.plugins import load_plugins
from siked.ranks import is_main_process
from siked.records import GradedSolution, Problem, Solution
from siked.registry import Registry
from siked.stages import ERROR, LOG, RESULT, StageError, StageRequest, write_result
from siked.strategies import FREE

StageBody = Callable[[SikedConfig, dict[str, Any], Any], tuple[list[str], StageInfo]]
"""(config, arguments, console) -> (output paths, the info the manifest records)."""

STAGE_KINDS: Registry[StageBody] = Registry("stage kind")


def stage_kind(name: str) -> Callable[[StageBody], StageBody]:
    """Register a stage body under `name`."""

    def register(body: StageBody) -> StageBody:
        STAGE_KINDS.register(name, body)
        return body

    return register


@contextmanager
def grader(config: SikedConfig) -> Iterator[Any]:
    """A grader with its own sandbox pool, for the duration of one stage."""
    from siked.grading import Grader
    from siked.sandbox import SandboxPool

    with SandboxPool.from_config(config.sandbox) as sandbox:
        yield Grader.from_config(config, sandbox)


# --- the stage bodies ------------------------------------------------------------------------


def backend_info(student: tuple[Any, Any]) -> dict[str, str]:
    """Which generation backend a stage ran, and why (`generation.backend: auto` decides)."""
    backend = student[1]
    return {"backend": backend.name, "backend_choice": backend.choice}


@stage_kind("teach")
def teach_stage(config: SikedConfig, args: dict[str, Any], console: Any) -> tuple[list[str], TeacherInfo]:
    """args: problems (JSONL of the training questions), out_dir."""
    from siked.teachers import teach

    out_dir = Path(args["out_dir"])
    result = teach(config, read_jsonl(args["problems"], Problem), out_dir, console=console)
    return [str(out_dir / "teacher.jsonl"), str(out_dir / "teacher_stats.json")], TeacherInfo(stats=result.stats)


@stage_kind("train")
def train_stage(config: SikedConfig, args: dict[str, Any], console: Any) -> tuple[list[str], TrainInfo]:
    """args: data (solutions JSONL), questions (problems JSONL), out_dir, previous, max_steps,
    trainer_args (SFTConfig fields from the loop's tracking), snapshot_at (steps of loadable
    snapshots, besides every epoch's end; absent: none)."""
    from siked.student.snapshots import snapshot_steps
    from siked.student.train import train_student

    records = read_jsonl(args["data"], Solution)
    by_id = {p.id: p for p in read_jsonl(args["questions"], Problem)}
    result = train_student([(by_id[r.problem_id], r) for r in records], config, args["out_dir"],
                           previous=args.get("previous"), max_steps=args.get("max_steps"), console=console,
                           trainer_args=args.get("trainer_args"), snapshot_at=args.get("snapshot_at"))
    return [str(args["out_dir"])], TrainInfo(examples=len(records), steps=result.steps, train_loss=result.train_loss,
                                             tokens_per_s=result.tokens_per_s, processes=result.processes,
                                             snapshots=snapshot_steps(args["out_dir"]))


@stage_kind("evaluate")
def evaluate_stage(config: SikedConfig, args: dict[str, Any], console: Any) -> tuple[list[str], EvalInfo]:
    """args: model, name (for the console), sets: {key: {problems, out}} (greedy, free choice)."""
    from siked.evaluation import summarize
    from siked.student.decode import decode_and_grade, open_student

    outputs, summaries = [], {}
    with grader(config) as grade, open_student(args["model"], config) as student:
        for key, paths in args["sets"].items():
            problems = read_jsonl(paths["problems"], Problem)
            if not problems:
                continue
            solutions, verdicts = decode_and_grade(student, problems, config, grade, greedy=True, console=console)
            write_jsonl(Path(paths["out"]), [GradedSolution(**s.model_dump(), verdict=v)
                                             for s, v in zip(solutions, verdicts, strict=True)])
            outputs.append(str(paths["out"]))
            summaries[key] = EvalResult.read(summarize(verdicts))
            console.print(f"  {args['name']} {key}: accuracy {summaries[key].rate:.1%}")
    return outputs, EvalInfo(eval=summaries, **backend_info(student))


def sample_modes(config: SikedConfig) -> list[str]:
    """The sampling passes of `mixing.line`: one free pass, or one per taught strategy (unbiased)."""
    return list(config.teacher.strategies) if config.mixing.sampling == "forced" else [FREE]


@stage_kind("sample")
def sample_stage(config: SikedConfig, args: dict[str, Any], console: Any) -> tuple[list[str], SampleInfo]:
    """args: model, problems, samples and verdicts (output JSONL paths)."""
    from siked.evaluation import sample_summary
    from siked.student.decode import decode_and_grade, open_student

    problems = read_jsonl(args["problems"], Problem)
    solutions, verdicts, by_mode = [], [], {}
    with grader(config) as grade, open_student(args["model"], config) as student:
        for mode in sample_modes(config):
            found, judged = decode_and_grade(student, problems, config, grade, greedy=False, mode=mode,
                                             samples=config.generation.samples, console=console)
            solutions += found
            verdicts += judged
            by_mode[mode] = StudentStats.read(sample_summary(problems, found, judged))
    write_jsonl(Path(args["samples"]), solutions)
    write_jsonl(Path(args["verdicts"]), verdicts)
    summary = StudentStats.read(sample_summary(problems, solutions, verdicts))
    if FREE in by_mode:  # the strategies the student picks itself, not the forced ones
        summary.strategy_counts = by_mode[FREE].strategy_counts
    summary.by_mode = by_mode
    return [str(args["samples"]), str(args["verdicts"])], SampleInfo(student=summary, **backend_info(student))


@stage_kind("route")
def route_stage(config: SikedConfig, args: dict[str, Any], console: Any) -> tuple[list[str], RoutingInfo]:
    """args: model, model_name, sets: {key: problems JSONL}, out. Every set decoded with each strategy forced."""
    from siked.evaluation import routing
    from siked.metrics import RoutingResult
    from siked.strategies import strategy_names
    from siked.student.decode import decode_and_grade, open_student

    table = {}
    with grader(config) as grade, open_student(args["model"], config) as student:
        for key, path in args["sets"].items():
            problems = read_jsonl(path, Problem)
            forced = {name: decode_and_grade(student, problems, config, grade, greedy=True, mode=name,
                                             console=console)[1] for name in strategy_names()}
            table[key] = routing(problems, forced)
            result = RoutingResult.read(table[key])
            console.print(f"  routing {key}: best single {result.best_single_strategy} "
                          f"{result.best_single_accuracy or 0:.1%}, oracle {result.oracle_accuracy or 0:.1%} "
                          f"(gap {100 * (result.gap() or 0):.1f} points)")
    write_json(Path(args["out"]), table)
    return [str(args["out"])], RoutingInfo(model=args["model_name"], **backend_info(student))


# --- running one request ---------------------------------------------------------------------


def run_request(request: StageRequest, console: Any) -> tuple[list[str], dict[str, Any]]:
    """Run a stage's body here, in this process (the worker's job; the loop's when stages run in-process);
    returns its outputs and its info as JSON (the loop reads it back with the stage's info record)."""
    if request.kind not in STAGE_KINDS:
        raise StageError(f"stage {request.stage}: unknown kind {request.kind!r} (known: {', '.join(STAGE_KINDS)})")
    load_plugins(request.config.get("plugins", []))  # before validation: it looks their names up
    config = SikedConfig.model_validate(request.config, context=CHECKED_BY_PARENT)
    outputs, info = STAGE_KINDS[request.kind](config, request.args, console)
    return outputs, info.dump()


def error_message(exc: Exception) -> str:
    """A failed stage's cause on one line: a `SikedError`'s own message, else `TypeName: message`
    (a pydantic error as its fields and messages, without the links to pydantic's documentation)."""
    if isinstance(exc, SikedError):
        return str(exc)
    if isinstance(exc, ValidationError):
        fields = [f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                  for e in exc.errors()]
        return f"ValidationError: {exc.title}: {'; '.join(fields)}"
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report_failure(exc: Exception, request_path: Path, console: Console) -> None:
    """Hand the error to the loop, which shows it once (or show it, run by hand); the traceback of
    anything but a `SikedError` goes to the stage's log."""
    if not isinstance(exc, SikedError):
        traceback.print_exc()
    message = error_message(exc)
    if not os.environ.get(PARENT_ENV):
        console.print("[bold red]error:[/]", end=" ")
        console.print(message, markup=False, highlight=False, soft_wrap=True)
    elif is_main_process():
        with atomic_path(request_path.parent / ERROR) as staging:
            staging.write_text(message, encoding="utf-8")


def warnings_to_log(log: Path) -> None:
    """Write Python warnings to the stage's log only: the loop's terminal shows siked's own lines,
    and the libraries' notices stay where someone reading a stage's history finds them."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        with log.open("a", encoding="utf-8") as sink:
            sink.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get(PARENT_ENV):  # a stage of `siked run`; ranks under a launcher die with it too
        die_with_parent()
    console = Console(stderr=True)
    if len(argv) != 1:
        console.print("usage: python -m siked.stage_worker RUN/<stage>/request.json")
        return 2
    if os.environ.get(PARENT_ENV):
        warnings_to_log(Path(argv[0]).parent / LOG)
    # siked shows its own progress; the libraries' download/map bars would only clutter the log
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    watch_parent()
    request_path = Path(argv[0])
    try:
        request = StageRequest.read(request_path)
        outputs, info = run_request(request, console)
    except Exception as exc:  # every failure reaches the user as one line
        report_failure(exc, request_path, console)
        return 2 if isinstance(exc, SikedError) else 1
    if is_main_process():
        write_result(request_path.parent / RESULT, outputs, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
