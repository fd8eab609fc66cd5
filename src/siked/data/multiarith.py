"""MultiArith (Roy & Roth 2015): 600 multi-step arithmetic word problems.

Sources:
- the raw release `MultiArith.json` (a JSON array of objects with `iIndex`, `sQuestion`,
  `lSolutions`, `lEquations`, `lAlignments`). It has no splits; all of it is loaded as `test`.
  Ids are `multiarith/test/<iIndex>`;
- the hub (`ChilleD/MultiArith`, `question` / `final_ans`, splits `train` 420 / `test` 180), or a
  local copy of it. Hub rows carry no index, so ids are `multiarith/<split>/<0-based row>`.

The gold is the single entry of `lSolutions` (`final_ans` on the hub); a problem with several
solutions keeps them in `answer_text` with `answer=None`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from siked.data.common import (
    DataError,
    clean_text,
    load_hub_rows,
    raw_file,
    read_json_array,
    require_fields,
)
from siked.data.numbers import format_number, parse_gold
from siked.records import Problem

HUB_ID = "ChilleD/MultiArith"
RAW_FILE = "MultiArith.json"
RAW_SPLITS = ("test",)


def load(
    split: str, data_file: Path | None = None, limit: int | None = None, *, hub_id: str = HUB_ID
) -> list[Problem]:
    path = raw_file(data_file, RAW_FILE)
    if path is None:
        return _from_hub(str(data_file or hub_id), split, limit)
    data_file = path
    if split not in RAW_SPLITS:
        raise DataError(
            f"{data_file}: the raw MultiArith file is one evaluation set, load it as split 'test' (not {split!r})"
        )
    rows = read_json_array(data_file)[:limit]
    return [
        _from_raw(row, split, f"{data_file}: element {index}") for index, row in enumerate(rows)
    ]


def _from_raw(row: dict[str, Any], split: str, where: str) -> Problem:
    require_fields(row, ("iIndex", "sQuestion", "lSolutions"), where)
    solutions = row["lSolutions"]
    if not isinstance(solutions, list) or not solutions:
        raise DataError(
            f"{where}: 'lSolutions' must be a non-empty list of numbers, got {solutions!r}"
        )
    values = [parse_gold(value) for value in solutions]
    if len(values) == 1 and values[0] is not None:
        answer, answer_text = values[0], format_number(values[0])
    else:
        answer = None
        answer_text = ", ".join(
            format_number(v) if v is not None else str(s)
            for v, s in zip(values, solutions, strict=True)
        )
    meta = {"equations": list(row["lEquations"])} if row.get("lEquations") else {}
    return _problem(row["iIndex"], split, row["sQuestion"], answer, answer_text, meta)


def _from_hub(origin: str, split: str, limit: int | None) -> list[Problem]:
    rows = load_hub_rows(origin, None, split, RAW_FILE)[:limit]
    problems = []
    for index, row in enumerate(rows):
        require_fields(row, ("question", "final_ans"), f"{origin} {split} row {index}")
        answer_text = str(row["final_ans"]).strip()
        problems.append(
            _problem(index, split, row["question"], parse_gold(answer_text), answer_text, {})
        )
    return problems


def _problem(
    index: Any,
    split: str,
    question: str,
    answer: float | None,
    answer_text: str,
    meta: dict[str, Any],
) -> Problem:
    return Problem(
        id=f"multiarith/{split}/{index}",
        question=clean_text(str(question)),
        answer=answer,
        answer_text=answer_text,
        source="multiarith",
        split=split,
        meta=meta,
    )
