"""Least-to-most: sub-questions answered in order.

Teachers write the decomposition in many shapes: the literal `Sub-question k:` / `Answer to
Sub-question k:` lines of the prompt, `Q1.` / `A1.`, numbered (`1.`, `1)`) or bulleted questions,
markdown headings (`### Step 1`, `**Sub-question 1:**`), or all questions first and the answers
after them. `parse_l2m` reads any of these; `LeastToMost.canonical` rewrites a kept solution in
the prompt's shape so that the student learns one format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from siked.strategies.base import Strategy
from siked.strategies.exemplars import Exemplar

SUB_QUESTION_LINE = re.compile(r"^Sub-question (\d+): \S")
SUB_ANSWER_LINE = re.compile(r"^Answer to Sub-question (\d+): \S")
"""The canonical form's lines."""

_BULLET = r"(?:[-*•+]\s+)"
_DECOR = r"(?:#{1,6}\s*)?(?:\*\*|__)?\s*"
# `Sub-question 1:`, `**Q1:**`, `### Step 2`, `Question 3.`; the number is optional only for sub-questions.
_LABELED = re.compile(
    rf"^{_BULLET}?{_DECOR}(?:(?:sub[- ]?(?:question|problem))\s*(?P<n1>\d+)?|(?:question|step|q)\s*(?P<n2>\d+))"
    r"\s*(?:\*\*|__)?\s*(?:[:.)\-–—]|\*\*|__|$)\s*",
    re.IGNORECASE,
)
_NUMBERED = re.compile(rf"^{_DECOR}(?P<n>\d+)\s*[.)]\s+")
_BULLETED = re.compile(rf"^{_BULLET}")
# `Answer to Sub-question 1:`, `A1:`, `**Answer:**`, `Answer 2.`
_ANSWER = re.compile(
    rf"^{_BULLET}?{_DECOR}(?:answer\s+to\s+sub[- ]?(?:question|problem)\s*(?P<n1>\d+)|(?:sub[- ]?)?answer\s*(?P<n2>\d+)?|a\s*(?P<n3>\d+))"
    r"\s*(?:\*\*|__)?\s*[:.)]\s*(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
_INTERROGATIVE = re.compile(
    r"^(?:how|what|which|who|whom|whose|when|where|why|is|are|does|do|did|can|will|was|were)\b",
    re.IGNORECASE,
)
_FINAL = re.compile(
    r"^(?:\*\*|__)?\s*(?:#{1,6}\s*)?(?:final\s+answer|(?:so,?\s+|thus,?\s+|therefore,?\s+)?the\s+(?:final\s+)?answer\s+is|####)"
    r"|\\boxed\s*\{",
    re.IGNORECASE,
)


@dataclass
class SubStep:
    """One sub-question and the text that answers it."""

    question: str
    number: int | None = None
    answer: list[str] = field(default_factory=list)

    def answer_text(self) -> str:
        return "\n".join(self.answer).strip()


@dataclass
class Decomposition:
    steps: list[SubStep]
    conclusion: list[str]
    """Lines after the last answer that state the final answer."""


def format_l2m(pairs: list[tuple[str, str]], final_answer: str | None = None) -> str:
    """Write (sub-question, answer) pairs in the L2M form, with an optional final line."""
    lines = []
    for k, (question, answer) in enumerate(pairs, start=1):
        lines.append(f"Sub-question {k}: {question.strip()}")
        lines.append(f"Answer to Sub-question {k}: {answer.strip()}")
    if final_answer is not None:
        lines.append(f"The answer is {final_answer}.")
    return "\n".join(lines)


def _split_question(text: str) -> tuple[str, str]:
    """(question, what follows it on the line): a bold span, else up to the first `?`."""
    text = text.strip()
    bold = re.match(r"^(\*\*|__)(?P<q>.+?)\1\s*(?P<rest>.*)$", text)
    if bold:
        return bold.group("q").strip().rstrip(":").strip(), bold.group("rest")
    mark = text.find("?")
    if mark != -1:
        return text[: mark + 1], text[mark + 1 :]
    return text.rstrip("*_ ").strip(), ""


def _is_question(text: str) -> bool:
    question, _ = _split_question(text)
    return question.endswith("?") or bool(_INTERROGATIVE.match(question))


def _header_kind(lines: list[str]) -> str | None:
    """The most explicit kind of sub-question header the text uses: labeled, numbered, bulleted."""
    if any(_LABELED.match(line) and not _ANSWER.match(line) for line in lines):
        return "labeled"
    for kind, pattern in (("numbered", _NUMBERED), ("bulleted", _BULLETED)):
        if any((m := pattern.match(line)) and _is_question(line[m.end():]) for line in lines):
            return kind
    return None


def _header(line: str, kind: str) -> tuple[int | None, str] | None:
    """(number, text after the marker) when `line` opens a sub-question of `kind`."""
    if kind == "labeled":
        match = _LABELED.match(line)
        if match and not _ANSWER.match(line):
            number = match.group("n1") or match.group("n2")
            return (int(number) if number else None), line[match.end():]
        return None
    pattern = _NUMBERED if kind == "numbered" else _BULLETED
    match = pattern.match(line)
    if match and _is_question(line[match.end():]):
        number = match.group("n") if kind == "numbered" else None
        return (int(number) if number else None), line[match.end():]
    return None


def _answer_target(line: str, steps: list[SubStep], kind: str) -> tuple[SubStep | None, str] | None:
    """An answer label (`A2:`, `Answer to Sub-question 2:`, a second `2.` list) and the step it answers."""
    match = _ANSWER.match(line)
    number: str | None = None
    if match:
        number = match.group("n1") or match.group("n2") or match.group("n3")
        rest = line[match.end():]
    elif kind == "numbered" and (numbered := _NUMBERED.match(line)):
        number, rest = numbered.group("n"), line[numbered.end():]
    else:
        return None
    if number is None:
        return (steps[-1] if steps else None), rest
    for step in steps:
        # An earlier step whose answer holds no number yet: the questions came first (a list).
        if step.number == int(number) and (step is steps[-1] or not re.search(r"\d", step.answer_text())):
            return step, rest
    return None if not match else (None, rest)


def parse_l2m(text: str) -> Decomposition | None:
    """The sub-questions of `text` with their answers, or None when it has no sub-question header."""
    lines = [line.strip() for line in text.splitlines()]
    kind = _header_kind(lines)
    if kind is None:
        return None
    steps: list[SubStep] = []
    target: SubStep | None = None
    awaiting_question = False
    for line in lines:
        header = _header(line, kind)
        if header is not None:
            question, rest = _split_question(header[1])
            target = SubStep(question=question, number=header[0])
            steps.append(target)
            awaiting_question = not question
            if rest.strip():
                target.answer.append(rest.strip())
            continue
        if not line or target is None:
            continue
        if awaiting_question:  # `### Step 1` or `**Sub-question 1:**` alone; the question follows
            target.question, rest = _split_question(line)
            awaiting_question = False
            if rest.strip():
                target.answer.append(rest.strip())
            continue
        answer = _answer_target(line, steps, kind)
        if answer is not None and answer[0] is not None:
            target, rest = answer
            if not re.search(r"\d", target.answer_text()):
                target.answer.clear()  # a note like "Now we answer them one by one."
            if rest.strip():
                target.answer.append(rest.strip())
            continue
        target.answer.append(line)
    return Decomposition(steps=steps, conclusion=_split_conclusion(steps))


def _split_conclusion(steps: list[SubStep]) -> list[str]:
    """Move the final-answer lines (`The answer is 5.`, `\\boxed{5}`) out of the last answer."""
    if not steps:
        return []
    last = steps[-1].answer
    for index, line in enumerate(last):
        if index > 0 and _FINAL.search(line):
            conclusion = last[index:]
            del last[index:]
            return conclusion
    return []


def decomposition_problem(parsed: Decomposition | None) -> str | None:
    """Why `parsed` is not sub-questions answered in order, or None."""
    if parsed is None or not parsed.steps:
        return "no sub-questions (e.g. 'Sub-question 1: ...', 'Q1.', '1. How many ...?', '### Step 1')"
    numbers = [step.number for step in parsed.steps if step.number is not None]
    if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return f"sub-questions out of order (numbered {', '.join(map(str, numbers))})"
    for k, step in enumerate(parsed.steps, start=1):
        if not step.question:
            return f"sub-question {k} is empty"
    # A lone unanswered step is tolerated (GSM8K's own socratic solutions have a few).
    if not any(step.answer_text() for step in parsed.steps):
        return "no sub-question has an answer"
    return None


_LATEX = (
    (re.compile(r"\\boxed\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\text\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"\1/\2"),
    (re.compile(r"\\times"), "×"),
    (re.compile(r"\\cdot"), "·"),
    (re.compile(r"\\div"), "÷"),
    (re.compile(r"\\[\[\]()]"), ""),
    (re.compile(r"\*\*|__"), ""),
    (re.compile(r"^#{1,6}\s*|^[-*•+]\s+", re.MULTILINE), ""),
)


def _plain(text: str) -> str:
    """One line of plain text: markdown emphasis, headings, bullets and LaTeX wrappers removed."""
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


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
        return decomposition_problem(parse_l2m(text))

    def canonical(self, text: str, final_answer: str | None) -> str:
        """The solution as `Sub-question k: ...` / `Answer to Sub-question k: ...` lines.

        Sub-questions left unanswered are dropped. `final_answer` (what the grader read from `text`) becomes the last line; the text is
        returned unchanged when it is not a valid decomposition.
        """
        parsed = parse_l2m(text)
        if decomposition_problem(parsed) is not None or parsed is None:
            return text
        pairs = [(_plain(step.question), _plain(step.answer_text())) for step in parsed.steps if step.answer_text()]
        return format_l2m(pairs, _plain(final_answer) if final_answer else None)
