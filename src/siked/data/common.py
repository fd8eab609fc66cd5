"""Shared pieces of the dataset loaders: the error type, file readers and the hub reader."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from siked import io as siked_io
from siked.errors import SikedError, one_line


class DataError(SikedError, ValueError):
    """A dataset that cannot be loaded; the message names the file and line, or the hub id."""


def require_file(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    return path


def raw_file(data_file: Path | None, name: str) -> Path | None:
    """The raw release file to read (`data_file`, or `name` inside it), or None to read the hub
    (or a local hub snapshot directory)."""
    if data_file is not None and data_file.is_dir() and (data_file / name).is_file():
        return data_file / name
    if data_file is None or data_file.is_dir():
        return None
    return data_file


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line of a JSON Lines file (gzip too)."""
    path = require_file(siked_io.jsonl_source(path))
    try:
        yield from siked_io.iter_jsonl(path)
    except siked_io.RecordError as exc:
        raise DataError(str(exc)) from None


def read_json_array(path: Path) -> list[dict[str, Any]]:
    """Read a file holding one JSON array of objects (SVAMP.json, MultiArith.json)."""
    require_file(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(rows).__name__}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(
                f"{path}: element {index} is a {type(row).__name__}, expected an object"
            )
    return rows


def require_fields(row: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    missing = [field for field in fields if row.get(field) is None]
    if missing:
        raise DataError(
            f"{where}: missing field(s) {', '.join(map(repr, missing))} (present: {', '.join(sorted(row))})"
        )


def load_hub_rows(
    hub_id: str | Path, config: str | None, split: str, raw_files: str = "the raw release file"
) -> list[dict[str, Any]]:
    """Rows of one split from the Hugging Face hub, or from a local directory laid out like a hub repo.

    A local directory may be a full snapshot (README.md declaring the configs) or just the data
    folders; a config whose folder exists (`main/test-00000-of-00001.parquet`) is read from it.
    `raw_files` names what the loader looked for first, for the error message.
    """
    import datasets

    local = Path(hub_id).is_dir()
    kwargs: dict[str, Any] = {"split": split}
    if local and config and (Path(hub_id) / config).is_dir():
        kwargs["data_dir"] = config
    elif config:
        kwargs["name"] = config
    try:
        dataset = datasets.load_dataset(str(hub_id), **kwargs)
    # the hub client raises many types: connection errors, missing repositories, unknown splits
    except Exception as exc:
        what = f"{hub_id!r}" + (f" (config {config!r})" if config else "") + f" split {split!r}"
        if local:
            raise DataError(
                f"{hub_id} holds no {raw_files}, and reading it as a local copy of the hub "
                f"repository ({what}) failed: {one_line(exc)}"
            ) from exc
        raise DataError(
            f"could not load {what} from the Hugging Face hub: {one_line(exc)}; without network access "
            f"pass {raw_files} of the original release with --data-file"
        ) from exc
    return dataset.to_list()


def clean_text(text: str) -> str:
    """Strip and collapse runs of whitespace (for datasets whose text has stray spaces)."""
    return " ".join(text.split())


_SENTENCE_END = (".", "?", "!", ",", ";", ":")


def join_body_question(body: str, question: str) -> str:
    """Body and question as one problem text.

    Bodies ending a sentence (or a clause: ASDiv's `If each box had seven books,`) are followed by
    the question after one space. A body that stops mid-sentence (SVAMP's `... If there are 692
    girls`) gets a comma and the question's first word lowercased: `..., how many ...`.
    """
    body, question = clean_text(body), clean_text(question)
    if not body:
        return question
    if not question:
        return body
    if body.endswith(_SENTENCE_END):
        return f"{body} {question}"
    if re.match(r"^[A-Z][a-z]", question):
        question = question[0].lower() + question[1:]
    return f"{body}, {question}"
