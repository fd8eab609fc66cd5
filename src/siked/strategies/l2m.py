from __future__ import annotations

import re

from siked.strategies.base import Strategy
from siked.strategies.exemplars import Exemplar

SUB_QUESTION = re.compile(r"^\s*Sub-question\s*(\d+)\s*:", re.IGNORECASE | re.MULTILINE)
SUB_ANSWER = re.compile(r"^\s*Answer to Sub-question\s*(\d+)\s*:", re.IGNORECASE | re.MULTILINE)


def format_l2m(pairs: list[tuple[str, str]], final_answer: str | None = None) -> str:
    """Write (sub-question, answer) pairs in the L2M form, with an optional final line."""
    lines = []
    for k, (question, answer) in enumerate(pairs, start=1):
        lines.append(f"Sub-question {k}: {question.strip()}")
        lines.append(f"Answer to Sub-question {k}: {answer.strip()}")
    if final_answer is not None:
        lines.append(f"The answer is {final_answer}.")
    return "\n".join(lines)


class LeastToMost(Strategy):
    name = "l2m"
    title = "Least-to-most"
    instruction = (
        "Solve the math word problem by breaking it into simpler sub-questions and answering them "
        "in order. Write each as 'Sub-question k: ...' followed by 'Answer to Sub-question k: ...'. "
        "End with a final line of the form 'The answer is N.' where N is a number."
    )

    def exemplar_solution(self, exemplar: Exemplar) -> str:
        return exemplar.l2m

    def invalid_reason(self, text: str) -> str | None:
        asked = SUB_QUESTION.findall(text)
        answered = SUB_ANSWER.findall(text)
        if not asked:
            return "no 'Sub-question k:' line"
        if not answered:
            return "no 'Answer to Sub-question k:' line"
        return None
