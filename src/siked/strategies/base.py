"""What every reasoning strategy provides: teacher prompts, cleaning, validity, what to grade."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar

from siked.strategies.exemplars import EXEMPLARS, Exemplar

PROMPT_VERSION = "v1"
"""Bumped whenever a teacher prompt changes: part of the teacher cache key."""

# A completion model often keeps going with a new few-shot item; everything from there is dropped.
CONTINUATION_MARKERS = ("\nQuestion:", "\n### Question", "\n\n\n")
_LEADING_TAG = re.compile(r"^\s*\[(?P<name>[a-z0-9_]+)\]\s*:?\s*", re.IGNORECASE)


class Strategy(ABC):
    """A way of solving a math word problem (CoT, L2M, PoT, ...).

    Subclasses set `name`, `title` and `instruction`, and say how to read a solution.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    instruction: ClassVar[str]
    """What the teacher is asked to write."""
    executes: ClassVar[bool] = False
    """True when the solution is a program whose `answer` variable is the result."""

    @property
    def tag(self) -> str:
        return f"[{self.name}]"

    @abstractmethod
    def exemplar_solution(self, exemplar: Exemplar) -> str:
        """This strategy's solution of a few-shot exemplar."""

    @abstractmethod
    def invalid_reason(self, text: str) -> str | None:
        """Why a cleaned solution does not follow this strategy's form, or None if it does."""

    def exemplars(self) -> list[tuple[str, str]]:
        return [(ex.question, self.exemplar_solution(ex)) for ex in EXEMPLARS]

    def teacher_prompt(self, question: str) -> str:
        """Few-shot prompt for a completions endpoint; the teacher continues after `Answer:`."""
        shots = "\n\n".join(f"Question: {q}\nAnswer:\n{s}" for q, s in self.exemplars())
        return f"{self.instruction}\n\n{shots}\n\nQuestion: {question.strip()}\nAnswer:\n"

    def teacher_messages(self, question: str) -> list[dict[str, str]]:
        """The same few-shot prompt as chat turns, for a chat endpoint."""
        messages = [{"role": "system", "content": self.instruction}]
        for q, s in self.exemplars():
            messages.append({"role": "user", "content": f"Question: {q}"})
            messages.append({"role": "assistant", "content": s})
        messages.append({"role": "user", "content": f"Question: {question.strip()}"})
        return messages

    @property
    def stop(self) -> list[str]:
        """Stop strings for teacher generation."""
        return ["\nQuestion:", "\n\n\n"]

    def clean(self, text: str) -> str:
        """Strip a leading strategy tag and anything the model wrote after the solution."""
        match = _LEADING_TAG.match(text)
        if match and match.group("name").lower() == self.name:
            text = text[match.end():]
        for marker in CONTINUATION_MARKERS:
            cut = text.find(marker)
            if cut != -1:
                text = text[:cut]
        return text.strip()

    def canonical(self, text: str, final_answer: str | None) -> str:
        """The one form a kept teacher solution is stored in (the student learns one format).

        `final_answer` is what the grader read from `text`; the default keeps the text as it is.
        """
        return text

    def gradable_text(self, text: str) -> str:
        """What the grader reads: the text itself, or for executing strategies, the program."""
        return text
