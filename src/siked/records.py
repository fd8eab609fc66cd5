"""The small typed records that flow through every stage: problem -> solution -> verdict."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictStatus = Literal["ok", "no_answer", "invalid", "timeout", "error"]


class Problem(BaseModel):
    """One math word problem with its gold answer.

    `answer` is the gold as a number, or None when the dataset's answer is not a single
    number (then `answer_text` keeps what the dataset wrote and the problem cannot be graded).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    answer: float | None
    answer_text: str
    source: str
    split: str
    solution: str | None = None
    """The dataset's worked solution, where it has one (GSM8K, gsm_symbolic)."""
    sub_questions: tuple[str, ...] = ()
    """Least-to-most sub-questions (GSM8K socratic), in order."""
    sub_answers: tuple[str, ...] = ()
    """The step answering each sub-question, aligned with `sub_questions`."""
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def numeric_gold(self) -> bool:
        return self.answer is not None


class Solution(BaseModel):
    """A solution text (or program) for one problem, written with one strategy."""

    problem_id: str
    strategy: str
    solution: str
    origin: str = "unknown"
    """Who wrote it: `teacher:<backend>:<model>`, `student:<iteration>`, `file`, ..."""
    sample_index: int = 0
    truncated: bool = False
    """The text was cut by the token limit (`finish_reason: length`), not ended by the writer."""


class Verdict(BaseModel):
    """The grader's judgement of one solution."""

    problem_id: str
    strategy: str
    status: VerdictStatus
    correct: bool
    predicted: float | None = None
    predicted_text: str | None = None
    """The answer as the solution wrote it (or the repr of a program's `answer`)."""
    detail: str | None = None
    """Why the status is not `ok`: the error message, the rule that failed, ..."""
    truncated: bool = False
    """The graded output was cut by the generation token limit."""


class GradedSolution(Solution):
    """One line of an evaluation file (`iter<k>/eval/<set>.jsonl`): a solution with its verdict."""

    verdict: Verdict


class Prediction(BaseModel):
    """One line of `siked eval --out`: a question, the student's greedy answer to it and its grade."""

    set: str
    """The evaluation set, `name:split`."""
    problem_id: str
    question: str
    gold: float | None
    gold_text: str
    strategy: str
    """The strategy the student chose (`none`: it named none)."""
    solution: str
    answer: float | None
    """The answer extracted from the solution (a program's `answer`), None when there is none."""
    answer_text: str | None
    correct: bool
    status: VerdictStatus
    detail: str | None = None
    truncated: bool
