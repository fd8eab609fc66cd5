"""Reading and writing artifacts: JSON Lines of records, written atomically and durably."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from siked.errors import SikedError, one_line

Record = TypeVar("Record", bound=BaseModel)


class RecordError(SikedError, ValueError):
    """A JSON Lines row that cannot be read; the message names the file and line."""


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_directory(path: Path, marker: str) -> Iterator[Path]:
    """Yield an empty directory beside `path`; it is renamed to `path` only if the block succeeds,
    so no reader ever sees a half-written directory. If another process published `path` first
    (it holds `marker`), that copy is kept and this one discarded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        try:
            staging.rename(path)
        except OSError:
            if not (path / marker).is_file():  # not just another process finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, records: Iterable[BaseModel | dict[str, Any]]) -> int:
    """Write all rows at once (atomic and fsynced); returns the number of rows."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            row = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    return count


def jsonl_source(path: Path | str) -> Path:
    """`path`, or `path.gz` when only that exists (run files are committed compressed)."""
    path = Path(path)
    compressed = path.with_name(path.name + ".gz")
    return compressed if not path.exists() and compressed.is_file() else path


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line names file and line. A gzip file
    is read as its text, and `x.jsonl` from `x.jsonl.gz` when only that exists."""
    path = jsonl_source(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: cannot be read ({type(exc).__name__}: {one_line(exc)})") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<row>"
        parts.append(f"field {field!r}: {err['msg'].lower()}")
    return "; ".join(parts)


def read_jsonl(path: Path, model: type[Record]) -> list[Record]:
    """Read every row as `model`; extra keys are ignored, a missing or wrong field names file:line."""
    return [record for _, record in read_jsonl_numbered(path, model)]


def read_jsonl_numbered(path: Path, model: type[Record]) -> list[tuple[int, Record]]:
    rows = []
    for lineno, row in iter_jsonl(path):
        try:
            rows.append((lineno, model.model_validate(row)))
        except ValidationError as exc:
            raise RecordError(f"{path}:{lineno}: {_describe(exc)}") from None
    return rows
