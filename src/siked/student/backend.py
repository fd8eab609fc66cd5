"""The generation backend interface the `hf` and `vllm` backends share: prompts in, completions out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

ALPACA_STOPS = ("\n### Instruction", "### Input", "\n### Response")
"""The Alpaca prompt's section headers: a student that writes one has finished its answer."""

ProgressFn = Callable[[int], None]
"""Called with the number of prompts just completed."""


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    """Generated tokens, the stop token included."""
    truncated: bool = False
    """Cut by the token limit: no end token and no stop string before it."""


class GenerationBackend(Protocol):
    """Turns prompts into `samples` completions each (stop strings already cut off)."""

    def complete(
        self,
        prompts: Sequence[str],
        *,
        samples: int,
        greedy: bool,
        progress: ProgressFn | None = None,
        max_new_tokens: int | None = None,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """`max_new_tokens` and `seed` override the backend's `generation` settings for this call."""

    def close(self) -> None: ...

    name: str
    """Which backend this is: hf or vllm."""
    choice: str
    """Why it was chosen (set by `open_backend`)."""


def stop_strings(prompt_style: str) -> list[str]:
    return list(ALPACA_STOPS) if prompt_style == "alpaca" else []


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i != -1), default=len(text))
    return text[:cut]



