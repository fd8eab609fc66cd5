"""Self-guided mixing of teacher and student data (step 5 of SIKeD).

Pure functions over problem ids, never question text. The mode says what a mix takes:
- `all`: every kept teacher solution plus the student's correct ones;
- `adaptive`: teacher solutions only where the student failed;
- `student`: the student's correct solutions only (the paper's "standard" ablation);
- `teacher`: the teacher's solutions only, every iteration (the teacher-only control).

The line (`mixing.line`, docs/fidelity.md) says what "failed" means and what is kept:
- `unbiased` (the authors' selsamp line): per question and strategy, from forced samples;
- `biased` (selsamp-biased): per question, from free samples, then one solution per question of the
  highest strategy in a priority order (the student's own on a tie);
- `paper` (the paper's prose): per question, from free samples.

Iteration 1 trains on teacher data whatever the mode, and an iteration whose mix would be empty
(the student solved nothing in `student` mode) falls back to teacher data; `Mix.fallback` says so.
The teacher records any method trains on, SIKeD or a baseline, come from `select_teacher`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from siked.records import Solution, Verdict

MIX_MODES = ("all", "adaptive", "student", "teacher")
LINES = ("unbiased", "biased", "paper")
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


def one_per_question(records: Iterable[Solution], priority: Sequence[str]) -> list[Solution]:
    """The biased line's choice: per question, the first record of its highest-priority strategy.

    Strategies missing from `priority` rank after the listed ones. Records keep their input order
    otherwise, so listing the student's solutions first prefers them on a tie (the authors' code
    leaves that tie to an unstable sort)."""
    rank = {name: i for i, name in enumerate(priority)}
    chosen: dict[str, tuple[int, int]] = {}
    records = list(records)
    for index, record in enumerate(records):
        key = (rank.get(record.strategy, len(rank)), index)
        if record.problem_id not in chosen or key < chosen[record.problem_id]:
            chosen[record.problem_id] = key
    keep = {index for _, index in chosen.values()}
    return [record for index, record in enumerate(records) if index in keep]


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


def adaptive_granularity(line: str) -> str:
    """Where a line's adaptive mixing looks for the student's failures: per question or per strategy."""
    if line not in LINES:
        raise ValueError(f"unknown mixing line {line!r} (one of {', '.join(LINES)})")
    return "strategy" if line == "unbiased" else "question"


def mix(
    teacher: Sequence[Solution],
    student_correct: Sequence[Solution],
    mode: str,
    line: str = "unbiased",
    max_per_strategy: int = 1,
    priority: Sequence[str] = (),
    *,
    first_iteration: bool = False,
) -> Mix:
    """Build one iteration's training set from kept teacher data and the student's correct data."""
    if mode not in MIX_MODES:
        raise ValueError(f"unknown mixing mode {mode!r} (one of {', '.join(MIX_MODES)})")
    teacher = select_teacher(teacher, max_per_strategy)
    student = cap_per_strategy(deduplicate(student_correct), max_per_strategy)
    fallback = None
    if first_iteration or mode == "teacher":
        student, teacher_part = [], list(teacher)
        if first_iteration and mode == "student":
            fallback = "iteration 1: teacher data (the student has no solutions yet)"
    elif mode == "all":
        teacher_part = list(teacher)
    elif mode == "adaptive":
        teacher_part = teacher_for_unsolved(teacher, student, adaptive_granularity(line))
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
    records = student + teacher_part
    if line == "biased":
        records = one_per_question(records, priority)
    from_student = {id(s) for s in student}
    student_count = sum(id(r) in from_student for r in records)
    return Mix(
        records=records,
        teacher_count=len(records) - student_count,
        student_count=student_count,
        strategy_counts=dict(Counter(r.strategy for r in records)),
        fallback=fallback,
    )
