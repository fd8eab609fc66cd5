"""The student's solutions, decoded and graded: what evaluation, sampling and routing run on.

An output without a known strategy tag is graded `invalid` here and never reaches the grader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from siked.config import SikedConfig
from siked.evaluation import routing, summarize
from siked.grading import Grader
from siked.records import Problem, Solution, Verdict
from siked.sandbox import SandboxPool
from siked.strategies import FREE, strategy_names
from siked.student.generate import generate_solutions, open_backend
from siked.student.models import locate_model


def grade_student_outputs(
    grader: Any, by_id: Mapping[str, Problem], solutions: Sequence[Solution], progress: Any = None
) -> list[Verdict]:
    """Grade student outputs; one without a known strategy tag is `invalid`, not an error."""
    known = set(strategy_names())
    tagged = [s for s in solutions if s.strategy in known]
    graded = iter(grader.grade_many([(by_id[s.problem_id], s.strategy, s.solution) for s in tagged], progress))
    return [
        (next(graded) if s.strategy in known else Verdict(
            problem_id=s.problem_id, strategy=s.strategy, status="invalid", correct=False,
            detail="no known strategy tag",
        )).model_copy(update={"truncated": s.truncated})
        for s in solutions
    ]


@contextmanager
def open_student(model: str | Path, config: SikedConfig) -> Iterator[tuple[Any, Any]]:
    """(source, loaded generation backend) for `model`, to reuse across many decodes."""
    source = locate_model(model)
    style = source.prompt_style or config.student.prompt_style
    backend = open_backend(source, config.generation, style)
    try:
        yield source, backend
    finally:
        backend.close()


def decode_and_grade(
    student: tuple[Any, Any], problems: Sequence[Problem], config: SikedConfig, grader: Any, *,
    greedy: bool, mode: str = FREE, samples: int = 1, console: Any = None,
) -> tuple[list[Solution], list[Verdict]]:
    """The student's solutions of `problems` (forced to `mode` unless free), graded."""
    source, backend = student
    solutions = generate_solutions(
        source, list(problems), config, mode=mode, greedy=greedy, samples=samples,
        backend=backend, console=console,
    )
    return solutions, grade_student_outputs(grader, {p.id: p for p in problems}, solutions)


GradedSet = Callable[[str, Sequence[Problem], list[Solution], list[Verdict]], None]
"""(set key, problems, the student's greedy solutions, their verdicts), e.g. to write predictions."""


def evaluate_model(
    model: str,
    sets: Mapping[str, Sequence[Problem]],
    config: SikedConfig,
    routing_too: bool = False,
    console: Any = None,
    on_graded: GradedSet | None = None,
) -> dict[str, dict]:
    """Greedy free-choice evaluation of `model` on each set (and forced strategies for routing);
    `on_graded` sees each set's free-choice solutions and verdicts."""
    results: dict[str, dict] = {}
    with SandboxPool.from_config(config.sandbox) as sandbox, open_student(model, config) as student:
        grader = Grader.from_config(config, sandbox)
        for key, problems in sets.items():
            decode = lambda mode, ps=problems: decode_and_grade(  # noqa: E731
                student, ps, config, grader, greedy=True, mode=mode, console=console)
            solutions, verdicts = decode(FREE)
            results[key] = summarize(verdicts)
            if on_graded is not None:
                on_graded(key, problems, solutions, verdicts)
            if routing_too:
                forced = {name: decode(name)[1] for name in strategy_names()}
                results[key]["routing"] = routing(problems, forced)
    return results
