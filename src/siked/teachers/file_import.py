"""The `file` teacher: solutions generated elsewhere, read from a JSON Lines file.

The default layout is the `siked grade` solutions schema, one object a line:
`{"problem_id": ..., "strategy": "cot", "solution": "..."}`. Other layouts are mapped with
`teacher.file.fields` (dotted paths into nested objects; a value `=cot` is a constant, for a file
holding one strategy only). Lines naming problems outside the set being taught are skipped;
every other problem is an error naming the file and line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siked.io import RecordError, iter_jsonl
from siked.records import Problem, Solution
from siked.strategies import get_strategy, strategy_names
from siked.teachers.base import SolveContext, Teacher, TeacherError

DEFAULT_FIELDS = {"problem_id": "problem_id", "strategy": "strategy", "solution": "solution"}
_MISSING = object()


class FileTeacher(Teacher):
    backend = "file"
    uses_llm = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        settings = config.file
        if settings.path is None:
            raise TeacherError("teacher.backend=file needs teacher.file.path: a JSON Lines file of solutions")
        self.path = Path(settings.path)
        unknown = sorted(set(settings.fields) - set(DEFAULT_FIELDS))
        if unknown:
            raise TeacherError(
                f"teacher.file.fields: unknown key(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_FIELDS)})"
            )
        self.fields = {**DEFAULT_FIELDS, **settings.fields}

    @property
    def model_name(self) -> str:
        return self.path.name

    def solve(self, problems: Sequence[Problem], context: SolveContext) -> list[Solution]:
        wanted = {problem.id for problem in problems}
        strategies = set(context.strategies)
        counts: Counter[tuple[str, str]] = Counter()
        solutions: list[Solution] = []
        outside = other_strategy = 0
        try:
            rows = list(iter_jsonl(self.path))
        except RecordError as exc:
            raise TeacherError(str(exc)) from None
        for line_number, row in rows:
            where = f"{self.path}:{line_number}"
            problem_id = str(self._field(row, "problem_id", where))
            strategy = str(self._field(row, "strategy", where))
            text = self._field(row, "solution", where)
            if strategy not in strategy_names():
                raise TeacherError(f"{where}: unknown strategy {strategy!r} (known: {', '.join(strategy_names())})")
            if not isinstance(text, str):
                raise TeacherError(f"{where}: the solution must be text, got {type(text).__name__}")
            if problem_id not in wanted:
                outside += 1
                continue
            if strategy not in strategies:
                other_strategy += 1
                continue
            index = counts[problem_id, strategy]
            counts[problem_id, strategy] += 1
            solutions.append(
                Solution(
                    problem_id=problem_id,
                    strategy=strategy,
                    solution=get_strategy(strategy).clean(text),
                    origin=self.origin,
                    sample_index=index,
                )
            )
        context.say(
            f"teacher file {self.path}: {len(solutions)} solutions for {len({p for p, _ in counts})} of "
            f"{len(wanted)} problems"
            + (f"; {outside} line(s) for other problems skipped" if outside else "")
            + (f"; {other_strategy} line(s) of strategies not asked for skipped" if other_strategy else "")
        )
        order = {problem.id: i for i, problem in enumerate(problems)}
        rank = {name: i for i, name in enumerate(context.strategies)}
        solutions.sort(key=lambda s: (order[s.problem_id], rank[s.strategy], s.sample_index))
        return solutions

    def _field(self, row: dict[str, Any], name: str, where: str) -> Any:
        path = self.fields[name]
        if path.startswith("="):
            return path[1:]
        value: Any = row
        for part in path.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
            if value is _MISSING:
                raise TeacherError(
                    f"{where}: no field {path!r} for {name} (present: {', '.join(sorted(row))}); "
                    "map other layouts with teacher.file.fields"
                )
        if value is None:
            raise TeacherError(f"{where}: field {path!r} ({name}) is null")
        return value
