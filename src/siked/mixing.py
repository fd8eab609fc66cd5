"""Self-guided mixing of teacher and student data (step 5 of SIKeD).

Pure functions over problem ids, never question text:
- `all`: every kept teacher solution plus the student's correct ones;
- `adaptive`: teacher solutions only where the student failed, per question (the student solved
  it with no strategy) or per question and strategy (as when each strategy's sampling is forced);
- `student`: the student's correct solutions only (the paper's "standard" ablation).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from siked.records import Solution, Verdict

MIX_MODES = ("all", "adaptive", "student")
GRANULARITIES = ("question", "strategy")


@dataclass(frozen=True)
class Mix:
    """One iteration's training set and what it is made of."""

    records: list[Solution]
    teacher_count: int
    student_count: int
    strategy_counts: dict[str, int] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        """The teacher share of the training set."""
        total = self.teacher_count + self.student_count
        return self.teacher_count / total if total else 0.0


def correct_solutions(solutions: Sequence[Solution], verdicts: Sequence[Verdict]) -> list[Solution]:
    """The solutions whose verdict is correct (verdicts are aligned with solutions)."""
    if len(solutions) != len(verdicts):
        raise ValueError(f"{len(solutions)} solutions but {len(verdicts)} verdicts")
    kept = []
    for solution, verdict in zip(solutions, verdicts, strict=True):
        if verdict.problem_id != solution.problem_id:
            raise ValueError(
                f"verdict for {verdict.problem_id!r} is aligned with a solution of {solution.problem_id!r}"
            )
        if verdict.correct:
            kept.append(solution)
    return kept


def _normalized(text: str) -> str:
    return " ".join(text.split())


def deduplicate(records: Iterable[Solution]) -> list[Solution]:
    """Drop repeats of the same (problem, strategy, whitespace-normalised text); first one wins."""
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for record in records:
        key = (record.problem_id, record.strategy, _normalized(record.solution))
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def cap_per_strategy(records: Iterable[Solution], limit: int) -> list[Solution]:
    """At most `limit` solutions per question per strategy, in input order."""
    counts: Counter[tuple[str, str]] = Counter()
    kept = []
    for record in records:
        key = (record.problem_id, record.strategy)
        if counts[key] < limit:
            counts[key] += 1
            kept.append(record)
    return kept


def prefer_strategies(records: Iterable[Solution], priority: Sequence[str]) -> list[Solution]:
    """Biased selection: per question keep only its highest-priority strategy that has solutions.

    Strategies missing from `priority` rank after the listed ones, in their usual order.
    """
    rank = {name: i for i, name in enumerate(priority)}
    by_question: dict[str, list[Solution]] = defaultdict(list)
    for record in records:
        by_question[record.problem_id].append(record)
    kept = []
    for group in by_question.values():
        best = min(rank.get(r.strategy, len(rank)) for r in group)
        kept.extend(r for r in group if rank.get(r.strategy, len(rank)) == best)
    return kept


def teacher_for_unsolved(
    teacher: Iterable[Solution], student_correct: Iterable[Solution], granularity: str
) -> list[Solution]:
    """Teacher solutions where the student has no correct solution (per question or strategy)."""
    if granularity == "question":
        solved = {s.problem_id for s in student_correct}
        return [t for t in teacher if t.problem_id not in solved]
    if granularity == "strategy":
        solved_pairs = {(s.problem_id, s.strategy) for s in student_correct}
        return [t for t in teacher if (t.problem_id, t.strategy) not in solved_pairs]
    raise ValueError(f"unknown granularity {granularity!r} (one of {', '.join(GRANULARITIES)})")


def mix(
    teacher: Sequence[Solution],
    student_correct: Sequence[Solution],
    mode: str,
    granularity: str = "question",
    max_per_strategy: int = 1,
    priority: Sequence[str] | None = None,
) -> Mix:
    """Build one iteration's training set from kept teacher data and the student's correct data."""
    if mode not in MIX_MODES:
        raise ValueError(f"unknown mixing mode {mode!r} (one of {', '.join(MIX_MODES)})")
    student = cap_per_strategy(deduplicate(student_correct), max_per_strategy)
    if mode == "all":
        teacher_part = list(teacher)
    elif mode == "adaptive":
        teacher_part = teacher_for_unsolved(teacher, student, granularity)
    else:
        teacher_part = []
    teacher_part = cap_per_strategy(deduplicate(teacher_part), max_per_strategy)
    student_keys = {(s.problem_id, s.strategy, _normalized(s.solution)) for s in student}
    teacher_part = [
        t for t in teacher_part
        if (t.problem_id, t.strategy, _normalized(t.solution)) not in student_keys
    ]
    if priority:
        teacher_part = prefer_strategies(teacher_part, priority)
        student = prefer_strategies(student, priority)
    records = teacher_part + student
    return Mix(
        records=records,
        teacher_count=len(teacher_part),
        student_count=len(student),
        strategy_counts=dict(Counter(r.strategy for r in records)),
    )
