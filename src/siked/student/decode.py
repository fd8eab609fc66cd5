"""The student's solutions, decoded and graded: what evaluation, sampling and routing run on.

An output without a known strategy tag is graded `invalid` here and never reaches the grader."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from siked.config import SikedConfig
from siked.evaluation import routing, summarize
from siked.grading import Grader
from siked.records import Problem, Solution, Verdict
from siked.sandbox import SandboxPool
from siked.strategies import FREE, strategy_names
from siked.student.generate import Student


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


GradedSet = Callable[[str, Sequence[Problem], list[Solution], list[Verdict]], None]
"""(set key, problems, the student's greedy solutions, their verdicts), e.g. to write predictions."""


def greedy_graded(student: Student, problems: Sequence[Problem], grader: Any,
                  mode: str = FREE) -> tuple[list[Solution], list[Verdict]]:
    """The student's greedy solutions of `problems` (free choice, or strategy `mode` forced), graded."""
    solutions = student.generate(problems, mode=mode, greedy=True).solutions
    return solutions, grade_student_outputs(grader, {p.id: p for p in problems}, solutions)


def evaluate_model(
    model: str,
    sets: Mapping[str, Sequence[Problem]],
    config: SikedConfig,
    routing_too: bool = False,
    console: Any = None,
    on_graded: GradedSet | None = None,
) -> dict[str, dict]:
    """Greedy free-choice evaluation of `model` on each set (and, for routing, each strategy it was
    taught, forced);
    `on_graded` sees each set's free-choice solutions and verdicts."""
    results: dict[str, dict] = {}
    with SandboxPool.from_config(config.sandbox) as sandbox, Student.load(model, config, console=console) as student:
        grader = Grader.from_config(config, sandbox)
        for key, problems in sets.items():
            solutions, verdicts = greedy_graded(student, problems, grader)
            results[key] = summarize(verdicts)
            if on_graded is not None:
                on_graded(key, problems, solutions, verdicts)
            if routing_too:
                forced = {name: greedy_graded(student, problems, grader, name)[1] for name in student.strategies}
                results[key]["routing"] = routing(problems, forced)
    return results
