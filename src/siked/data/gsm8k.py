"""GSM8K (Cobbe et al. 2021): grade-school math with worked solutions and socratic sub-questions.

Sources, giving identical problems:
- the hub (`openai/gsm8k`, configs `main` and `socratic`, row-aligned), or a local copy of it;
- the raw release files `train.jsonl` / `test.jsonl`; the sibling `<split>_socratic.jsonl` is read
  automatically when present. A `*_socratic.jsonl` file alone is enough too: its step texts are
  exactly the main solution's lines.

Ids are `gsm8k/<split>/<0-based row>`. `solution` is the worked solution without the `#### N` line,
calculator annotations `<<48/2=24>>` kept; `sub_questions` / `sub_answers` are the socratic
`<sub-question> ** <step>` pairs (steps with their annotations).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from siked.data.common import DataError, iter_jsonl, load_hub_rows, require_fields
from siked.data.numbers import parse_gold
from siked.records import Problem

HUB_ID = "openai/gsm8k"
SPLITS = ("train", "test")
FINAL_MARK = "\n#### "
STEP_MARK = " ** "
RAW_HINT = "{split}.jsonl / {split}_socratic.jsonl"

log = logging.getLogger(__name__)

Row = tuple[str, str, str]  # (where, question, answer) - `where` names the file:line or hub row


def load(
    split: str,
    data_file: Path | None = None,
    limit: int | None = None,
    *,
    hub_id: str = HUB_ID,
    socratic: bool = True,
    require_socratic: bool = False,
) -> list[Problem]:
    """GSM8K problems of one split; `socratic=False` skips the sub-questions."""
    if data_file is not None and data_file.is_dir() and _raw_file_in(data_file, split):
        data_file = _raw_file_in(data_file, split)
    if data_file is None or data_file.is_dir():
        main, steps = _hub_rows(str(data_file or hub_id), split, socratic, require_socratic)
    else:
        _check_split_name(data_file, split)
        main, steps = _raw_rows(data_file, socratic, require_socratic)
    if main and steps is not None:
        _check_aligned(main, steps)
    rows = (main or steps or [])[:limit]
    if not main:  # a socratic file alone: its step texts are the main solution's lines
        return [_problem(split, index, row, row, steps_only=True) for index, row in enumerate(rows)]
    return [
        _problem(split, index, row, steps[index] if steps else None)
        for index, row in enumerate(rows)
    ]


def _check_split_name(path: Path, split: str) -> None:
    named = path.stem.removesuffix("_socratic")
    if named in SPLITS and named != split:
        raise DataError(
            f"{path} holds the GSM8K {named!r} split, but split {split!r} was asked for"
        )


def _raw_file_in(directory: Path, split: str) -> Path | None:
    for name in (f"{split}.jsonl", f"{split}_socratic.jsonl"):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_rows(path: Path) -> list[Row]:
    rows = []
    for line_number, row in iter_jsonl(path):
        where = f"{path}:{line_number}"
        require_fields(row, ("question", "answer"), where)
        rows.append((where, str(row["question"]), str(row["answer"])))
    return rows


def _raw_rows(
    path: Path, socratic: bool, require_socratic: bool
) -> tuple[list[Row], list[Row] | None]:
    """(main rows, socratic rows); main rows are empty when only a socratic file was given."""
    if path.stem.endswith("_socratic"):
        return [], _read_rows(path)
    main = _read_rows(path)
    sibling = path.with_name(f"{path.stem}_socratic{path.suffix}")
    if socratic and sibling.is_file():
        return main, _read_rows(sibling)
    if require_socratic:
        raise DataError(
            f"{path}: the socratic sub-questions need the sibling file {sibling}, which is missing"
        )
    return main, None


def _hub_rows(
    hub_id: str, split: str, socratic: bool, require_socratic: bool
) -> tuple[list[Row], list[Row] | None]:
    main = _as_rows(
        load_hub_rows(hub_id, "main", split, RAW_HINT.format(split=split)),
        f"{hub_id}[main] {split}",
    )
    if not socratic:
        return main, None
    try:
        steps = _as_rows(load_hub_rows(hub_id, "socratic", split), f"{hub_id}[socratic] {split}")
    except DataError:
        if require_socratic:
            raise
        log.warning(
            "GSM8K %s: no socratic config in %s; loading without sub-questions", split, hub_id
        )
        return main, None
    return main, steps


def _as_rows(records: list[dict[str, Any]], origin: str) -> list[Row]:
    rows = []
    for index, record in enumerate(records):
        where = f"{origin} row {index}"
        require_fields(record, ("question", "answer"), where)
        rows.append((where, str(record["question"]), str(record["answer"])))
    return rows


def _check_aligned(main: list[Row], steps: list[Row]) -> None:
    if len(main) != len(steps):
        raise DataError(
            f"GSM8K main and socratic data differ in length: {len(main)} rows ({main[0][0]}) "
            f"vs {len(steps)} rows ({steps[0][0]})"
        )
    for (where, question, answer), (step_where, step_question, step_answer) in zip(
        main, steps, strict=True
    ):
        if (
            question != step_question
            or _final(answer, where)[1] != _final(step_answer, step_where)[1]
        ):
            raise DataError(f"{where} and {step_where}: main and socratic rows are not aligned")


def _final(answer: str, where: str) -> tuple[str, str]:
    """(worked solution, final answer text) of a GSM8K answer field."""
    head, mark, final = ("\n" + answer).rpartition(FINAL_MARK)
    if not mark:
        raise DataError(f"{where}: answer has no final '#### N' line")
    return head[1:], final.strip()


def _split_steps(answer: str, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    questions, steps = [], []
    for line in answer.split("\n"):
        question, mark, step = line.partition(STEP_MARK)
        if not mark:
            raise DataError(f"{where}: socratic line without ' ** ': {line!r}")
        questions.append(question.strip())
        steps.append(step.strip())
    return tuple(questions), tuple(steps)


def _problem(
    split: str, index: int, main: Row, steps: Row | None, steps_only: bool = False
) -> Problem:
    where, question, answer = main
    solution, final = _final(answer, where)
    sub_questions: tuple[str, ...] = ()
    sub_answers: tuple[str, ...] = ()
    if steps is not None:
        step_solution, _ = _final(steps[2], steps[0])
        sub_questions, sub_answers = _split_steps(step_solution, steps[0])
        if steps_only:
            solution = "\n".join(sub_answers)
    value = parse_gold(final.replace(",", ""))
    if value is None:
        raise DataError(f"{where}: final answer {final!r} is not a number")
    return Problem(
        id=f"gsm8k/{split}/{index}",
        question=question,
        answer=value,
        answer_text=final,
        source="gsm8k",
        split=split,
        solution=solution,
        sub_questions=sub_questions,
        sub_answers=sub_answers,
    )
