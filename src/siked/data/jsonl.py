"""Any JSON Lines file of problems, with configurable field names.

Options: `question_field` (default `question`), `answer_field` (default `answer`), `id_field`
(default none: ids are the 0-based row), `solution_field` (default none) and `source` (default
`jsonl`, the id prefix). Field names may be dotted paths into nested objects (`metadata.answer`).
Ids are `<source>/<split>/<id or row>`. Answers may be numbers or text; text that is not one number
gives `answer=None`. Malformed rows and missing fields are errors naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from siked.data.common import DataError, iter_jsonl
from siked.data.numbers import format_number, parse_gold
from siked.records import Problem

_MISSING = object()


def load(
    split: str,
    data_file: Path | None = None,
    limit: int | None = None,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    id_field: str | None = None,
    solution_field: str | None = None,
    source: str = "jsonl",
) -> list[Problem]:
    if data_file is None:
        raise DataError("the jsonl loader needs a file: pass --data-file PATH")
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for line_number, row in iter_jsonl(data_file):
        if limit is not None and len(problems) >= limit:
            break
        where = f"{data_file}:{line_number}"
        question = _field(row, question_field, where)
        if not isinstance(question, str) or not question.strip():
            raise DataError(
                f"{where}: field {question_field!r} must be non-empty text, got {question!r}"
            )
        key = str(_field(row, id_field, where)) if id_field else str(len(problems))
        if key in first_line_of:
            raise DataError(f"{where}: id {key!r} repeats the one on line {first_line_of[key]}")
        first_line_of[key] = line_number
        gold = _field(row, answer_field, where)
        answer = parse_gold(gold)
        numeric = (
            isinstance(gold, (int, float)) and not isinstance(gold, bool) and answer is not None
        )
        solution = _field(row, solution_field, where) if solution_field else None
        problems.append(
            Problem(
                id=f"{source}/{split}/{key}",
                question=question.strip(),
                answer=answer,
                answer_text=format_number(answer) if numeric else str(gold).strip(),
                source=source,
                split=split,
                solution=None if solution is None else str(solution),
                meta={"line": line_number},
            )
        )
    return problems


def _field(row: dict[str, Any], path: str, where: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            present = ", ".join(sorted(row))
            raise DataError(f"{where}: missing field {path!r} (present: {present})")
    if value is None:
        raise DataError(f"{where}: field {path!r} is null")
    return value
