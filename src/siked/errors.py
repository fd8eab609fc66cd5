"""The one base class of siked's errors (imports nothing, so every module can use it).

Each error says what went wrong where (file and line, config field, server, model) and what to
change. The CLI catches `SikedError` once, prints its message on one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class SikedError(Exception):
    """Bad input or an unusable resource: a file, a row, a config value, a server, a model."""


def one_line(exc: BaseException) -> str:
    """A library's (often multi-line) exception text on one line, for a `SikedError` message."""
    return " ".join(str(exc).split())


def fields_message(exc: Any, prefix: str = "") -> str:
    """A pydantic `ValidationError` on one line: each field's dotted name and message, without links."""
    return "; ".join(f"{prefix}{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())
