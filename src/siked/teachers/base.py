"""What every teacher backend shares: requests, replies, the ledger and the backend interface.

A teacher turns (problem, strategy) pairs into solution texts. LLM teachers (`openai`, `vllm`,
`hf`) send requests whose completions go through the content-keyed cache (`siked.teachers.cache`);
the `file` and `reference` teachers read solutions that already exist and send nothing.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from siked.errors import SikedError
from siked.records import Problem, Solution

if TYPE_CHECKING:
    from siked.config import TeacherConfig
    from siked.progress import ProgressReporter


class TeacherError(SikedError, RuntimeError):
    """A teacher that cannot run or cannot finish; the message says which server or file and why."""


@dataclass
class Request:
    """One generation request: `len(sample_indices)` samples of one (problem, strategy) prompt."""

    problem_id: str
    strategy: str
    sample_indices: list[int]
    keys: list[str]
    """The cache key of each sample index, aligned with `sample_indices`."""
    prompt: str | None
    """The few-shot prompt, for completions endpoints (None for chat)."""
    messages: list[dict[str, str]] | None
    """The same prompt as chat turns, for chat endpoints (None for completions)."""
    stop: list[str]
    seed: int

    @property
    def n(self) -> int:
        return len(self.sample_indices)

    def subset(self, indices: Sequence[int], seed: int) -> Request:
        """The same prompt, asking only for `indices` (a subset of this request's sample indices)."""
        key_of = dict(zip(self.sample_indices, self.keys, strict=True))
        return Request(
            problem_id=self.problem_id,
            strategy=self.strategy,
            sample_indices=list(indices),
            keys=[key_of[i] for i in indices],
            prompt=self.prompt,
            messages=self.messages,
            stop=self.stop,
            seed=seed,
        )


@dataclass
class Reply:
    """What one successful request brought back: texts for some (usually all) of its sample indices."""

    request: Request
    sample_indices: list[int]
    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    seconds: float = 0.0

    def keys(self) -> list[str]:
        key_of = dict(zip(self.request.sample_indices, self.request.keys, strict=True))
        return [key_of[i] for i in self.sample_indices]


@dataclass
class Failure:
    """A request that could not be completed (retries exhausted, or an answer that cannot be retried)."""

    request: Request
    error: str
    retries: int = 0


class ReplySink(Protocol):
    """Where backends put what arrives.

    `record` returns once the replies are durable on disk; in an event loop, `submit` queues a
    reply for the next group commit and `drain` waits until everything submitted is durable.
    """

    def record(self, replies: Sequence[Reply]) -> None: ...

    def submit(self, reply: Reply) -> None: ...

    async def drain(self) -> None: ...

    def record_failure(self, failure: Failure) -> None: ...


@dataclass
class StrategyLedger:
    """Requests and tokens spent on one strategy."""

    requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completions: int = 0
    cached_completions: int = 0
    """Completions served from the cache instead of a request."""

    def add(self, other: StrategyLedger) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Ledger:
    """Per-strategy request accounting; `cost` uses the configured prices per million tokens."""

    by_strategy: dict[str, StrategyLedger] = field(default_factory=dict)

    def of(self, strategy: str) -> StrategyLedger:
        return self.by_strategy.setdefault(strategy, StrategyLedger())

    def add_reply(self, strategy: str, completions: int, prompt_tokens: int, completion_tokens: int, retries: int) -> None:
        entry = self.of(strategy)
        entry.requests += 1
        entry.completions += completions
        entry.prompt_tokens += prompt_tokens
        entry.completion_tokens += completion_tokens
        entry.retries += retries

    def add_failure(self, strategy: str, retries: int) -> None:
        entry = self.of(strategy)
        entry.failed_requests += 1
        entry.retries += retries

    def total(self) -> StrategyLedger:
        total = StrategyLedger()
        for entry in self.by_strategy.values():
            total.add(entry)
        return total

    def summary(self, price_prompt: float | None, price_completion: float | None) -> dict[str, Any]:
        """JSON-ready totals and per-strategy entries, with cost when prices are configured."""

        def row(entry: StrategyLedger) -> dict[str, Any]:
            data: dict[str, Any] = dict(entry.__dict__)
            data["cost"] = cost(entry, price_prompt, price_completion)
            return data

        return {
            "total": row(self.total()),
            "by_strategy": {name: row(entry) for name, entry in sorted(self.by_strategy.items())},
        }


def cost(entry: StrategyLedger, price_prompt: float | None, price_completion: float | None) -> float | None:
    if price_prompt is None and price_completion is None:
        return None
    return (
        entry.prompt_tokens * (price_prompt or 0.0) + entry.completion_tokens * (price_completion or 0.0)
    ) / 1e6


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed derived from `parts`, identical on every machine and Python run."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class SolveContext:
    """What a teacher's `solve` gets besides the problems: where to log, what to report to."""

    strategies: list[str]
    samples: int
    log_path: Path | str | None = None
    """The completion log (and cache) of LLM teachers."""
    progress: ProgressReporter | None = None
    ledger: Ledger = field(default_factory=Ledger)
    say: Callable[[str], None] = print
    """Console line printer (rich markup allowed)."""


class Teacher(ABC):
    """A source of solutions for (problem, strategy) pairs; use as a context manager.

    It is built from the whole `teacher` section: the settings every backend shares, and its own (a
    built-in backend's section, or `teacher.options` for a registered one)."""

    backend: ClassVar[str]
    uses_llm: ClassVar[bool] = True

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config

    @property
    def model_name(self) -> str:
        """The model it samples: it names the solutions' origin and keys the completion cache."""
        return self.config.model_name or "unknown"

    @property
    def prices(self) -> tuple[float | None, float | None]:
        """Price per million prompt and completion tokens, for the ledger's cost (None: unpriced)."""
        return None, None

    @property
    def origin(self) -> str:
        """`Solution.origin` of everything this teacher writes."""
        return f"teacher:{self.backend}:{self.model_name}"

    @abstractmethod
    def solve(self, problems: Sequence[Problem], context: SolveContext) -> list[Solution]:
        """Every solution this teacher has for `problems` and `context.strategies`, in a stable order."""

    def close(self) -> None:  # noqa: B027 - optional hook; most teachers hold nothing
        """Release models, engines or connections."""

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
