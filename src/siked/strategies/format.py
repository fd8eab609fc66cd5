"""The student's format: one instruction that asks the model to name its strategy, then solve.

The instruction lists the strategies the student is taught (a run's `teacher.strategies`), not every
registered one. Targets look like `[pot]: answer = 2 + 3`; the tag tells which strategy the student chose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from siked.strategies.registry import get_strategy, strategy_names

PromptStyle = Literal["alpaca", "chat"]

FREE = "free"
"""The decoding mode in which the student writes its own strategy tag (otherwise a strategy is forced)."""

_TAG = re.compile(r"^\s*\[(?P<name>[A-Za-z0-9_]+)\]\s*:\s?")

ALPACA_TEMPLATE = (
    "Below is an instruction describing a task, together with an input that gives its context. "
    "Write a response that completes the task.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{question}\n\n### Response:\n"
)


def student_instruction(strategies: Sequence[str]) -> str:
    """The instruction naming the tag of each of `strategies`, in their order."""
    options = "; ".join(f"[{n}] for {get_strategy(n).title.lower()}" for n in strategies)
    return (
        "Solve the math word problem. First choose a strategy and write its tag followed by a "
        f"colon ({options}), then write the solution with that strategy. "
        "A program must store its result in a variable named `answer`."
    )


def student_prompt(
    question: str,
    style: PromptStyle = "alpaca",
    tokenizer: Any = None,
    *,
    strategies: Sequence[str],
) -> str:
    """The prompt the student completes, listing `strategies` (those it is taught); `chat` needs a
    tokenizer with a chat template."""
    instruction = student_instruction(strategies)
    if style == "alpaca":
        return ALPACA_TEMPLATE.format(instruction=instruction, question=question.strip())
    if style == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_style 'chat' needs a tokenizer that has a chat template")
        messages = [{"role": "user", "content": f"{instruction}\n\n{question.strip()}"}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"unknown prompt style {style!r} (alpaca or chat)")


def forced_prefix(strategy: str) -> str:
    """Prefill that forces the student to use `strategy`."""
    get_strategy(strategy)
    return f"[{strategy}]: "


def student_target(strategy: str, solution: str) -> str:
    """The training target: the tag, then the solution (the EOS token is the trainer's job)."""
    return forced_prefix(strategy) + solution.strip()


def parse_tagged(text: str) -> tuple[str | None, str]:
    """Split a student completion into (strategy it chose, solution); None if no known tag."""
    match = _TAG.match(text)
    if not match:
        return None, text.strip()
    name = match.group("name").lower()
    if name not in strategy_names():
        return None, text.strip()
    return name, text[match.end():].strip()
