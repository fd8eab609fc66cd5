"""SVAMP (Patel et al. 2021): 1000 one-step word problems with varied structure.

Sources:
- the raw release `SVAMP.json` (one JSON array of 1000 objects). It has no splits; all of it is
  the evaluation set and is loaded as split `test`;
- the hub (`ChilleD/SVAMP`, splits `train` 700 / `test` 300, the same rows re-split), or a
  local copy of it. Note that `svamp:test` is 300 problems there and 1000 from the raw file.

Ids are `svamp/<split>/<ID>` (`svamp/test/chal-1`). The question is Body and Question joined
(see `join_body_question`); the gold is `Answer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from siked.data.common import (
    DataError,
    join_body_question,
    load_hub_rows,
    raw_file,
    read_json_array,
    require_fields,
)
from siked.data.numbers import format_number, parse_gold
from siked.records import Problem

HUB_ID = "ChilleD/SVAMP"
RAW_FILE = "SVAMP.json"
RAW_SPLITS = ("test",)


def load(
    split: str, data_file: Path | None = None, limit: int | None = None, *, hub_id: str = HUB_ID
) -> list[Problem]:
    path = raw_file(data_file, RAW_FILE)
    if path is None:
        origin = str(data_file or hub_id)
        rows = load_hub_rows(origin, None, split, RAW_FILE)
        where = f"{origin} {split} row"
    else:
        data_file = path
        if split not in RAW_SPLITS:
            raise DataError(
                f"{data_file}: the raw SVAMP file is one evaluation set, load it as split 'test' (not {split!r})"
            )
        rows = read_json_array(data_file)
        where = f"{data_file}: element"
    return [_problem(split, row, f"{where} {index}") for index, row in enumerate(rows[:limit])]


def _question(row: dict[str, Any], where: str) -> str:
    if row.get("Body") is not None and row.get("Question") is not None:
        return join_body_question(str(row["Body"]), str(row["Question"]))
    if row.get("question_concat"):
        return " ".join(str(row["question_concat"]).split())
    raise DataError(
        f"{where}: needs 'Body' and 'Question' (or 'question_concat'); present: {', '.join(sorted(row))}"
    )


def _problem(split: str, row: dict[str, Any], where: str) -> Problem:
    require_fields(row, ("ID", "Answer"), where)
    gold = row["Answer"]
    answer = parse_gold(gold)
    answer_text = (
        format_number(answer)
        if isinstance(gold, (int, float)) and answer is not None
        else str(gold).strip()
    )
    return Problem(
        id=f"svamp/{split}/{row['ID']}",
        question=_question(row, f"{where} (ID {row['ID']})"),
        answer=answer,
        answer_text=answer_text,
        source="svamp",
        split=split,
        meta={
            name: row[key]
            for key, name in (("Type", "type"), ("Equation", "equation"))
            if row.get(key) is not None
        },
    )
