"""The child side of a stage: `python -m siked.stage_worker RUN/<stage>/request.json`.

Each heavy stage of `siked run` is one body registered with its request model
(`siked.stage_requests`): it reads its inputs from the run directory, loads what it needs (the
student, the teacher, a sandbox pool to grade in), writes its outputs atomically and returns them
with the info record its request's kind names, which the manifest keeps. The worker writes
`result.json` last (the main process only, under `accelerate launch`); the loop reads it and
marks the stage done. See `siked.stages` for the parent side.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from siked.config import SikedConfig
from siked.errors import SikedError, fields_message, one_line
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
from siked.ranks import is_main_process
from siked.records import GradedSolution, Problem, Solution
from siked.registry import Registry
from siked.stage_requests import (
    EvaluateArgs,
    Info,
    RouteArgs,
    SampleArgs,
    StageArgs,
    StageError,
    StageRequest,
    TeachArgs,
    TrainArgs,
    read_request,
    write_result,
)
from siked.stages import ERROR, LOG, RESULT
from siked.strategies import FREE

if TYPE_CHECKING:
    from siked.student.generate import Student

Body = TypeVar("Body", bound=Callable[..., Any])
StageBody = Callable[[StageRequest[Any], Any], tuple[list[Path], StageInfo]]
"""(request, console) -> (output paths, the info record of the request's kind)."""


@dataclass(frozen=True)
class StageKind:
    args: type[StageArgs]
    """The request model of its arguments."""
    body: StageBody


STAGE_KINDS: Registry[StageKind] = Registry("stage kind")


def stage_body(args: type[StageArgs]) -> Callable[[Body], Body]:
    """Register the body that runs requests of `args.kind`."""

    def register(body: Body) -> Body:
        STAGE_KINDS.register(args.kind, StageKind(args=args, body=body))
        return body

    return register


@contextmanager
def grader(config: SikedConfig) -> Iterator[Any]:
    """A grader with its own sandbox pool, for the duration of one stage."""
    from siked.grading import Grader
    from siked.sandbox import SandboxPool

    with SandboxPool.from_config(config.sandbox) as sandbox:
        yield Grader.from_config(config, sandbox)


@contextmanager
def graded_student(request: StageRequest[Any], console: Any) -> Iterator[tuple[Student, Any]]:
    """The request's student (`args.model`), loaded, and a grader, for the duration of one stage."""
    from siked.student.generate import Student

    with grader(request.config) as grade, Student.load(request.args.model, request.config, console=console) as student:
        yield student, grade


def backend_fields(student: Student) -> dict[str, str]:
    """Which generation backend a stage ran, and why (`generation.backend: auto` decides)."""
    return {"backend": student.backend.name, "backend_choice": student.backend.choice}


# --- the stage bodies ------------------------------------------------------------------------


@stage_body(TeachArgs)
def teach_stage(request: StageRequest[TeachArgs], console: Any) -> tuple[list[Path], TeacherInfo]:
    from siked.teachers import teach

    args = request.args
    result = teach(request.config, read_jsonl(args.problems, Problem), args.out_dir, console=console)
    return [args.out_dir / "teacher.jsonl", args.out_dir / "teacher_stats.json"], TeacherInfo(stats=result.stats)


@stage_body(TrainArgs)
def train_stage(request: StageRequest[TrainArgs], console: Any) -> tuple[list[Path], TrainInfo]:
    from siked.student.snapshots import snapshot_steps
    from siked.student.train import train_student

    args = request.args
    records = read_jsonl(args.data, Solution)
    by_id = {p.id: p for p in read_jsonl(args.questions, Problem)}
    result = train_student([(by_id[r.problem_id], r) for r in records], request.config, args.out_dir,
                           previous=args.previous, max_steps=args.max_steps, console=console,
                           trainer_args=args.trainer_args, snapshot_at=args.snapshot_at)
    return [args.out_dir], TrainInfo(examples=len(records), steps=result.steps, train_loss=result.train_loss,
                                     tokens_per_s=result.tokens_per_s, processes=result.processes,
                                     snapshots=snapshot_steps(args.out_dir))


@stage_body(EvaluateArgs)
def evaluate_stage(request: StageRequest[EvaluateArgs], console: Any) -> tuple[list[Path], EvalInfo]:
    from siked.evaluation import summarize
    from siked.student.decode import greedy_graded

    outputs, summaries = [], {}
    with graded_student(request, console) as (student, grade):
        for key, paths in request.args.sets.items():
            problems = read_jsonl(paths.problems, Problem)
            if not problems:
                continue
            solutions, verdicts = greedy_graded(student, problems, grade)
            write_jsonl(paths.out, [GradedSolution(**s.model_dump(), verdict=v)
                                    for s, v in zip(solutions, verdicts, strict=True)])
            outputs.append(paths.out)
            summaries[key] = EvalResult.read(summarize(verdicts))
            console.print(f"  {request.stage.model} {key}: accuracy {summaries[key].rate:.1%}")
    return outputs, EvalInfo(eval=summaries, **backend_fields(student))


def sample_modes(config: SikedConfig) -> list[str]:
    """The sampling passes of `mixing.line`: one free pass, or one per taught strategy (unbiased)."""
    return list(config.teacher.strategies) if config.mixing.sampling == "forced" else [FREE]


@stage_body(SampleArgs)
def sample_stage(request: StageRequest[SampleArgs], console: Any) -> tuple[list[Path], SampleInfo]:
    from siked.evaluation import sample_summary
    from siked.student.decode import grade_student_outputs

    args = request.args
    problems = read_jsonl(args.problems, Problem)
    by_id = {p.id: p for p in problems}
    solutions, verdicts, by_mode = [], [], {}
    with graded_student(request, console) as (student, grade):
        for mode in sample_modes(request.config):
            found = student.generate(problems, mode=mode).solutions
            judged = grade_student_outputs(grade, by_id, found)
            solutions += found
            verdicts += judged
            by_mode[mode] = StudentStats.read(sample_summary(problems, found, judged))
    write_jsonl(args.solutions_out, solutions)
    write_jsonl(args.verdicts_out, verdicts)
    summary = StudentStats.read(sample_summary(problems, solutions, verdicts))
    if FREE in by_mode:  # the strategies the student picks itself, not the forced ones
        summary.strategy_counts = by_mode[FREE].strategy_counts
    summary.by_mode = by_mode
    return [args.solutions_out, args.verdicts_out], SampleInfo(student=summary, **backend_fields(student))


@stage_body(RouteArgs)
def route_stage(request: StageRequest[RouteArgs], console: Any) -> tuple[list[Path], RoutingInfo]:
    """Every set decoded with each strategy the student was taught, forced."""
    from siked.evaluation import routing
    from siked.metrics import RoutingResult
    from siked.student.decode import greedy_graded

    args, table = request.args, {}
    with graded_student(request, console) as (student, grade):
        for key, path in args.sets.items():
            problems = read_jsonl(path, Problem)
            forced = {name: greedy_graded(student, problems, grade, name)[1] for name in student.strategies}
            table[key] = routing(problems, forced)
            result = RoutingResult.read(table[key])
            console.print(f"  routing {key}: best single {result.best_single_strategy} "
                          f"{result.best_single_accuracy or 0:.1%}, oracle {result.oracle_accuracy or 0:.1%} "
                          f"(gap {100 * (result.gap() or 0):.1f} points)")
    write_json(args.out, table)
    return [args.out], RoutingInfo(model=str(args.model_name), **backend_fields(student))


# --- running one request ---------------------------------------------------------------------


def run_request(request: StageRequest[StageArgs[Info]], console: Any) -> tuple[list[Path], Info]:
    """Run a stage's body here, in this process (the worker's job; the loop's when stages run in-process);
    returns its outputs and its info record, of the type its request's kind names."""
    if request.kind not in STAGE_KINDS:
        raise StageError(f"stage {request.stage}: unknown kind {request.kind!r} (known: {', '.join(STAGE_KINDS)})")
    outputs, info = STAGE_KINDS[request.kind].body(request, console)
    if not isinstance(info, request.args.info):
        raise StageError(f"stage {request.stage}: its {request.kind} body answered with {type(info).__name__}, "
                         f"not the {request.args.info.__name__} its request names")
    return [Path(p) for p in outputs], info


def request_kinds() -> dict[str, type[StageArgs]]:
    """The request model of each registered stage kind."""
    return {name: kind.args for name, kind in STAGE_KINDS.items()}


def error_message(exc: Exception) -> str:
    """A failed stage's cause on one line: a `SikedError`'s own message, else `TypeName: message`
    (a pydantic error as its fields and messages, without the links to pydantic's documentation)."""
    if isinstance(exc, SikedError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return f"ValidationError: {exc.title}: {fields_message(exc)}"
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


def libraries_to_log(log: Path) -> Console:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at the stage's log, so that
    what the libraries print there (vLLM's logging, c10's C++ warnings, raw tqdm bars, and those of
    every process they start) stays in the log; siked's console keeps the original stderr, which
    the loop copies to the log and shows."""
    sys.stdout.flush()
    sys.stderr.flush()
    shown = open(os.dup(2), "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115 (for the process' life)
    sink = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(sink, 1)
    os.dup2(sink, 2)  # Python's warnings and tracebacks included
    os.close(sink)
    console = Console(file=shown)
    own = logging.getLogger("siked")  # siked's own warnings (a sandbox without isolation) stay in view
    handler = RichHandler(console=console, show_time=False, show_path=False)
    handler.setLevel(logging.WARNING)
    own.addHandler(handler)
    return console


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get(PARENT_ENV):  # a stage of `siked run`; ranks under a launcher die with it too
        die_with_parent()
    if len(argv) != 1:
        Console(stderr=True).print("usage: python -m siked.stage_worker RUN/<stage>/request.json")
        return 2
    console = libraries_to_log(Path(argv[0]).parent / LOG) if os.environ.get(PARENT_ENV) else Console(stderr=True)
    # siked shows its own progress; the libraries' download/map bars would only clutter the log
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    watch_parent()
    request_path = Path(argv[0])
    try:
        request = read_request(request_path, request_kinds())
        outputs, info = run_request(request, console)
    except Exception as exc:  # every failure reaches the user as one line
        report_failure(exc, request_path, console)
        return 2 if isinstance(exc, SikedError) else 1
    if is_main_process():
        write_result(request_path.parent / RESULT, outputs, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
