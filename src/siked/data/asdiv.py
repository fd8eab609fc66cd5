"""ASDiv (Miao et al. 2020): 2305 diverse elementary-school word problems.

Sources:
- the raw release `ASDiv.xml` (`<Problem ID="nluds-0001" Grade="1" Source="...">` holding
  `<Body>`, `<Question>`, `<Solution-Type>`, `<Answer>9 (apples)</Answer>`, `<Formula>`). It has no
  splits; load it as `test` (how the paper uses it) or `validation` (the hub's name);
- the hub (`EleutherAI/asdiv`, config `asdiv`, split `validation`), or a local copy of it.

Ids are `asdiv/<split>/<ID>` from the XML; hub rows carry no ID, so there they are
`asdiv/<split>/<0-based row>`. About a tenth of the answers are not one number (`10:1`,
`8 (ft); 128 (sq. ft)`, `Mrs. Hilt`): those problems are kept with `answer=None` and
`answer_text` as written, so they can be listed but not graded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from siked.data.common import (
    DataError,
    join_body_question,
    load_hub_rows,
    raw_file,
    require_fields,
    require_file,
)
from siked.data.numbers import parse_gold
from siked.records import Problem

HUB_ID = "EleutherAI/asdiv"
HUB_CONFIG = "asdiv"
RAW_FILE = "ASDiv.xml"
RAW_SPLITS = ("test", "validation")


def load(
    split: str, data_file: Path | None = None, limit: int | None = None, *, hub_id: str = HUB_ID
) -> list[Problem]:
    path = raw_file(data_file, RAW_FILE)
    if path is None:
        return _from_hub(str(data_file or hub_id), split, limit)
    data_file = path
    if split not in RAW_SPLITS:
        raise DataError(
            f"{data_file}: the raw ASDiv file has no splits, load it as 'test' or 'validation' (not {split!r})"
        )
    return [_from_xml(element, split, data_file) for element in _xml_problems(data_file)[:limit]]


def _xml_problems(path: Path) -> list[ET.Element]:
    require_file(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise DataError(f"{path}:{line}:{column}: invalid XML ({exc})") from None
    problems = list(root.iter("Problem"))
    if not problems:
        raise DataError(f"{path}: no <Problem> elements; is this ASDiv.xml?")
    return problems


def _from_xml(element: ET.Element, split: str, path: Path) -> Problem:
    problem_id = element.get("ID")
    if not problem_id:
        raise DataError(f"{path}: a <Problem> has no ID attribute")
    where = f"{path}: problem {problem_id}"
    fields = {
        tag: element.findtext(tag)
        for tag in ("Body", "Question", "Answer", "Solution-Type", "Formula")
    }
    require_fields(fields, ("Body", "Question", "Answer"), where)
    grade = element.get("Grade")
    meta: dict[str, Any] = {
        "grade": int(grade) if grade and grade.isdigit() else grade,
        "solution_type": fields["Solution-Type"],
        "formula": fields["Formula"],
    }
    return _problem(problem_id, split, fields["Body"], fields["Question"], fields["Answer"], meta)


def _from_hub(origin: str, split: str, limit: int | None) -> list[Problem]:
    rows = load_hub_rows(origin, HUB_CONFIG, split, RAW_FILE)[:limit]
    problems = []
    for index, row in enumerate(rows):
        require_fields(row, ("body", "question", "answer"), f"{origin} {split} row {index}")
        problem_id = row.get("id") or row.get("ID") or index
        meta = {"solution_type": row.get("solution_type"), "formula": row.get("formula")}
        problems.append(
            _problem(problem_id, split, row["body"], row["question"], row["answer"], meta)
        )
    return problems


def _problem(
    problem_id: Any, split: str, body: str, question: str, answer: str, meta: dict[str, Any]
) -> Problem:
    answer_text = " ".join(str(answer).split())
    return Problem(
        id=f"asdiv/{split}/{problem_id}",
        question=join_body_question(body, question),
        answer=parse_gold(answer_text),
        answer_text=answer_text,
        source="asdiv",
        split=split,
        meta={key: value for key, value in meta.items() if value is not None},
    )
