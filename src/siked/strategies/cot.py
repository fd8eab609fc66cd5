from __future__ import annotations

from siked.strategies.base import Strategy
from siked.strategies.exemplars import Exemplar


class ChainOfThought(Strategy):
    name = "cot"
    title = "Chain of thought"
    instruction = (
        "Solve the math word problem by reasoning step by step in plain sentences. "
        "End with a final line of the form 'The answer is N.' where N is a number."
    )

    def exemplar_solution(self, exemplar: Exemplar) -> str:
        return exemplar.cot

    def invalid_reason(self, text: str) -> str | None:
        if not text.strip():
            return "empty solution"
        return None
