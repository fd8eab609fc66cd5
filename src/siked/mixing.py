"""Self-guided mixing of teacher and student data (step 5 of SIKeD).

Pure functions over problem ids, never question text:
- `all`: every kept teacher solution plus the student's correct ones;
- `adaptive`: teacher solutions only where the student failed, per question (the student solved
  it with no strategy) or per question and strategy (as when each strategy's sampling is forced);
- `student`: the student's correct solutions only (the paper's "standard" ablation).

Iteration 1 trains on teacher data whatever the mode, and an iteration whose mix would be empty
(the student solved nothing in `student` mode) falls back to teacher data; `Mix.fallback` says so.
The teacher records any method trains on, SIKeD or a baseline, come from `select_teacher`.
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
    fallback: str | None = None
    """Why this mix holds teacher data its mode would not give (None: it follows its mode)."""

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


def select_teacher(
    teacher: Iterable[Solution], max_per_strategy: int, strategies: Sequence[str] | None = None
) -> list[Solution]:
    """The teacher records a method trains on: distinct solutions, at most `max_per_strategy` per
    question and strategy, of `strategies` (None: all). SIKeD's mix and the baselines both use it."""
    wanted = [t for t in teacher if strategies is None or t.strategy in strategies]
    return cap_per_strategy(deduplicate(wanted), max_per_strategy)


def mix(
    teacher: Sequence[Solution],
    student_correct: Sequence[Solution],
    mode: str,
    granularity: str = "question",
    max_per_strategy: int = 1,
    priority: Sequence[str] | None = None,
    *,
    first_iteration: bool = False,
) -> Mix:
    """Build one iteration's training set from kept teacher data and the student's correct data."""
    if mode not in MIX_MODES:
        raise ValueError(f"unknown mixing mode {mode!r} (one of {', '.join(MIX_MODES)})")
    teacher = select_teacher(teacher, max_per_strategy)
    student = cap_per_strategy(deduplicate(student_correct), max_per_strategy)
    fallback = None
    if first_iteration:
        student, teacher_part = [], list(teacher)
        if mode == "student":
            fallback = "iteration 1: teacher data (the student has no solutions yet)"
    elif mode == "all":
        teacher_part = list(teacher)
    elif mode == "adaptive":
        teacher_part = teacher_for_unsolved(teacher, student, granularity)
    elif student:
        teacher_part = []
    else:
        teacher_part = list(teacher)
        fallback = "teacher data: the student solved no training question"
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
        fallback=fallback,
    )
