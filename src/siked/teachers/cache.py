"""The content-keyed completion cache: a durable append-only JSON Lines log.

Every reply is appended as one line and fsync'ed before the request counts as done, so a crash
(even `kill -9`) loses at most the requests in flight. The log is also the cache: a completion is
keyed by everything that determines its distribution (backend, model, endpoint, prompt-template
version, problem, strategy, sampling parameters, sample index), and a rerun or a resume sends no
request whose key is already in the log. A line torn by a crash at the very end is dropped on
open; any other damaged line is an error naming the file and line.

Record layout (one JSON object a line):

    {"kind": "reply", "problem_id", "strategy", "samples": [{"index", "key", "text", "finish_reason"}],
     "prompt_tokens", "completion_tokens", "retries", "seconds", "backend", "model", "at"}
    {"kind": "failure", "problem_id", "strategy", "keys", "retries", "error", "backend", "model", "at"}
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siked.records import Problem
from siked.strategies import PROMPT_VERSION
from siked.teachers.base import Failure, Ledger, Reply, TeacherError

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock
    fcntl = None  # type: ignore[assignment]

LOG_VERSION = 1


def completion_key(
    *,
    backend: str,
    model: str,
    endpoint: str,
    problem: Problem,
    strategy: str,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    sample_index: int,
) -> str:
    """The cache key of one sample: a hash of everything that determines its distribution.

    The problem enters by id and by a hash of its question, so two datasets reusing an id never
    share completions. The server address does not enter: the same model behind another URL
    serves the same distribution.
    """
    fields = {
        "backend": backend,
        "model": model,
        "endpoint": endpoint,
        "prompt_version": PROMPT_VERSION,
        "problem_id": problem.id,
        "question": hashlib.sha256(problem.question.encode()).hexdigest(),
        "strategy": strategy,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "max_tokens": int(max_tokens),
        "seed": int(seed),
        "sample_index": int(sample_index),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Cached:
    text: str
    finish_reason: str | None
    record: int
    """Index of the reply record that brought it (for the all-runs ledger)."""


@dataclass(frozen=True)
class RecordCost:
    strategy: str
    prompt_tokens: int
    completion_tokens: int
    retries: int
    completions: int


class CompletionLog:
    """The durable completion log of one teaching run; also the `ReplySink` backends write to.

    `ledger` accumulates what this process spends; `on_completions(n)` is called as completions
    become durable (progress bars).
    """

    def __init__(
        self,
        path: Path,
        *,
        backend: str = "",
        model: str = "",
        ledger: Ledger | None = None,
        on_completions: Callable[[int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self.model = model
        self.ledger = ledger if ledger is not None else Ledger()
        self.on_completions = on_completions
        self.entries: dict[str, Cached] = {}
        self.records: list[RecordCost] = []
        self.torn_tail_bytes = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._pending: list[Reply] = []
        self._drain_task: asyncio.Task[None] | None = None
        self.write_error: Exception | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._handle = self.path.open("ab")
        self._lock_file()
        if created:
            _fsync_directory(self.path.parent)
        try:
            self._load()
        except BaseException:
            self._handle.close()
            raise

    def _lock_file(self) -> None:
        """One writer per log: a second run on the same cache would interleave and double-request."""
        if fcntl is None:
            return
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise TeacherError(
                f"{self.path} is in use by another process (another siked teach on the same cache?)"
            ) from None

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line torn by a crash mid-write: that request was still in flight
            self.torn_tail_bytes = len(data) - end
            with self.path.open("r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if line.strip():
                self._load_line(line, number)

    def _load_line(self, line: bytes, number: int) -> None:
        where = f"{self.path}:{number}"
        try:
            record = json.loads(line)
            kind = record["kind"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise TeacherError(
                f"{where}: damaged completion log line ({exc}); remove that line to resume "
                "(its completions will be requested again)"
            ) from None
        if kind == "failure":
            self.failures += 1
            return
        if kind != "reply":
            raise TeacherError(f"{where}: unknown record kind {kind!r}")
        try:
            samples = record["samples"]
            index = len(self.records)
            self.records.append(
                RecordCost(
                    strategy=str(record["strategy"]),
                    prompt_tokens=int(record.get("prompt_tokens") or 0),
                    completion_tokens=int(record.get("completion_tokens") or 0),
                    retries=int(record.get("retries") or 0),
                    completions=len(samples),
                )
            )
            for sample in samples:
                self.entries[str(sample["key"])] = Cached(
                    str(sample["text"]), sample.get("finish_reason"), index
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise TeacherError(f"{where}: reply record without a valid field ({exc!r})") from None

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> Cached | None:
        return self.entries.get(key)

    def ledger_of(self, keys: Sequence[str]) -> Ledger:
        """What the replies holding `keys` cost, over every run that wrote this log."""
        ledger = Ledger()
        records = {self.entries[key].record for key in keys if key in self.entries}
        for index in sorted(records):
            cost = self.records[index]
            ledger.add_reply(cost.strategy, cost.completions, cost.prompt_tokens, cost.completion_tokens, cost.retries)
        return ledger

    # -- writing (ReplySink) ---------------------------------------------------------------

    def record(self, replies: Sequence[Reply]) -> None:
        """Append replies durably (write, flush, fsync), then index them."""
        if not replies:
            return
        self._append([self._reply_record(reply) for reply in replies])
        for reply in replies:
            self._index(reply)

    def submit(self, reply: Reply) -> None:
        """`record` for the event loop, without waiting: replies arriving together share one write
        and fsync (group commit) on a helper thread. `drain` waits until all are durable."""
        if self.write_error is not None:
            raise self.write_error
        self._pending.append(reply)
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.get_running_loop().create_task(self._write_pending())

    async def drain(self) -> None:
        """Wait until every submitted reply is on disk; raise the error that stopped writing, if any."""
        while self._drain_task is not None and not self._drain_task.done():
            await asyncio.shield(self._drain_task)
        if self.write_error is not None:
            raise self.write_error

    async def _write_pending(self) -> None:
        while self._pending and self.write_error is None:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._append, [self._reply_record(reply) for reply in batch])
            except Exception as exc:  # disk full, file gone: the run must stop, nothing is indexed
                self.write_error = exc
                return
            for reply in batch:
                self._index(reply)

    def record_failure(self, failure: Failure) -> None:
        request = failure.request
        self._append([
            {
                "kind": "failure",
                "v": LOG_VERSION,
                "problem_id": request.problem_id,
                "strategy": request.strategy,
                "keys": request.keys,
                "retries": failure.retries,
                "error": failure.error,
                "backend": self.backend,
                "model": self.model,
                "at": _now(),
            }
        ])
        self.failures += 1
        self.ledger.add_failure(request.strategy, failure.retries)

    def _reply_record(self, reply: Reply) -> dict[str, Any]:
        request = reply.request
        return {
            "kind": "reply",
            "v": LOG_VERSION,
            "problem_id": request.problem_id,
            "strategy": request.strategy,
            "samples": [
                {"index": index, "key": key, "text": text, "finish_reason": finish}
                for index, key, text, finish in zip(
                    reply.sample_indices, reply.keys(), reply.texts, reply.finish_reasons, strict=True
                )
            ],
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "retries": reply.retries,
            "seconds": round(reply.seconds, 4),
            "backend": self.backend,
            "model": self.model,
            "at": _now(),
        }

    def _append(self, records: list[dict[str, Any]]) -> None:
        payload = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()
        with self._lock:
            self._handle.write(payload)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def _index(self, reply: Reply) -> None:
        index = len(self.records)
        self.records.append(
            RecordCost(
                reply.request.strategy, reply.prompt_tokens, reply.completion_tokens, reply.retries, len(reply.texts)
            )
        )
        for key, text, finish in zip(reply.keys(), reply.texts, reply.finish_reasons, strict=True):
            self.entries[key] = Cached(text, finish, index)
        self.ledger.add_reply(
            reply.request.strategy, len(reply.texts), reply.prompt_tokens, reply.completion_tokens, reply.retries
        )
        if self.on_completions is not None:
            self.on_completions(len(reply.texts))

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.close()

    def __enter__(self) -> CompletionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def _fsync_directory(directory: Path) -> None:
    """Make a newly created file's directory entry durable too (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
