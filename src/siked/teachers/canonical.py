"""Kept teacher solutions in one form per strategy, so that the student learns one format.

Teachers write least-to-most as `Q1.`/`A1.`, markdown headings, numbered questions, ...; each kept
solution is rewritten with its strategy's `canonical` form and graded again. The rewrite is kept
only when it still reaches the gold answer; otherwise the solution stays as the teacher wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from siked.records import Problem, Solution, Verdict
from siked.strategies import get_strategy


def canonical_kept(
    kept: Sequence[Solution],
    samples: Sequence[Solution],
    verdicts: Sequence[Verdict],
    problems: Sequence[Problem],
    grader: Any,
) -> tuple[list[Solution], dict[str, int]]:
    """(`kept` with texts in canonical form, counts of rewritten and left-as-written solutions)."""
    verdict_of = {id(sample): verdict for sample, verdict in zip(samples, verdicts, strict=True)}
    by_id = {problem.id: problem for problem in problems}
    rewritten: list[tuple[int, Solution]] = []
    out = list(kept)
    for index, solution in enumerate(kept):
        strategy = get_strategy(solution.strategy)
        if strategy.executes:
            continue
        verdict = verdict_of.get(id(solution))
        final = verdict.predicted_text if verdict is not None else None
        text = strategy.canonical(solution.solution, final)
        if text != solution.solution:
            rewritten.append((index, solution.model_copy(update={"solution": text})))
    regraded = grader.grade_many([(by_id[s.problem_id], s.strategy, s.solution) for _, s in rewritten])
    counts = {"rewritten": 0, "kept_as_written": 0}
    for (index, solution), verdict in zip(rewritten, regraded, strict=True):
        if verdict.correct:
            out[index] = solution
            counts["rewritten"] += 1
        else:
            counts["kept_as_written"] += 1
    return out, counts
