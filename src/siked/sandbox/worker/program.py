"""Inside the program process: run the code in the prelude's globals, describe its `answer`."""

from __future__ import annotations

import sys
from typing import Any

from .prelude import SYMPY_NAMES
from .protocol import ANSWER_CHARS, ERROR_CHARS


def execute(code: str, scope: dict[str, Any], memory: int, base: bool) -> dict[str, Any]:
    """Run the program in `scope`; the reply for its `answer` (`base`: a worker without sympy)."""
    try:
        exec(compile(code, "<program>", "exec"), scope)
    except MemoryError:
        return {"status": "error", "error": f"killed: memory (limit {memory // 2**20} MB)"}
    except NameError as exc:
        if base and isinstance(exc.name, str) and exc.name in SYMPY_NAMES:
            return {"status": "needs_sympy", "answer": None, "answer_float": None, "error": None}
        return {"status": "error", "error": describe(exc)}
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: all verdicts
        return {"status": "error", "error": describe(exc)}
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
    if "answer" not in scope:
        return {"status": "no_answer", "answer": None, "answer_float": None, "error": None}
    value = scope["answer"]
    try:
        text = str(value)
    except BaseException as exc:  # noqa: BLE001 - e.g. an int too long to print
        return {"status": "error", "error": f"answer cannot be printed: {describe(exc)}"}
    return {"status": "ok", "answer": text[:ANSWER_CHARS], "answer_float": _as_float(value),
            "error": None}


def _as_float(value: Any) -> float | None:
    if isinstance(value, (str, bytes, bytearray, bool)):
        return None
    try:
        return float(value)
    except BaseException:  # noqa: BLE001 - any object may raise anything
        return None


def describe(exc: BaseException) -> str:
    try:
        message = str(exc.msg if isinstance(exc, SyntaxError) else exc)
    except BaseException:  # noqa: BLE001
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is not None:
        text += f" (line {line})"
    return text[:ERROR_CHARS]


def reseed_random() -> None:
    """What os.fork's at-fork handler does: forked programs must not share one random stream."""
    random_module = sys.modules.get("random")
    if random_module is not None:
        random_module.seed()


