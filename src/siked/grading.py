"""Grade solutions: read the final answer a model wrote (`siked.answers`) or run its program, and
compare it with the gold.

math-verify is a fallback only, for answers plain parsing cannot read (`\\sqrt{2}`, `2^{10}`,
`\\frac34`) and for golds that are not a single number. Its own time limit relies on `signal.alarm`
(whole seconds, main thread only, one alarm per call), so siked turns it off and instead runs the
whole fallback (parse gold, parse prediction, compare, evaluate) under one deadline of
`math_verify_timeout_s` seconds of the process's CPU time (SIGPROF) when grading in the main thread:
CPU time, not wall time, so that a verdict does not depend on how busy the machine is. Signals cannot stop some C-level big-integer
work, and off the main thread there is no signal at all, so every input is also guarded: at most
`MATH_VERIFY_MAX_CHARS` characters, no powers with large or nested exponents, no large factorials.
A problem whose gold is not a number is graded with math-verify against `answer_text`; with
math-verify turned off it gets status `error`.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from siked.answers import answers_match, extract_answer, parse_number
from siked.records import Problem, Verdict, VerdictStatus
from siked.strategies import get_strategy

if TYPE_CHECKING:
    from siked.config import SikedConfig
    from siked.sandbox import ExecResult, SandboxPool

MATH_VERIFY_MAX_CHARS = 200
"""Longer answers are never handed to math-verify (a final answer is short)."""


# ---------------------------------------------------------------------------------------------
# math-verify fallback, under a deadline and an input guard

# The exponent after `^` or `**`: braced, parenthesized, or bare digits (then maybe chained: 2^3^4).
_POWER = re.compile(
    r"(?:\^|\*\*)\s*(?:\{(?P<braced>[^}]*)|\((?P<paren>[^)]*)|(?P<bare>[\d.]+)(?P<chain>\s*(?:\^|\*\*))?)"
)
_HUGE_FACTORIAL = re.compile(r"(?:\d{4,}|[)}])\s*!|factorial\s*\(|\\binom\s*\{\s*\d{5,}")


class MathVerifyTimeout(BaseException):
    """Raised in the grading thread when math-verify runs past its deadline.

    A BaseException, like math-verify's own, so that library code catching `Exception` cannot
    swallow it.
    """


def math_verify_safe_input(text: str) -> bool:
    """Whether `text` is short and free of the huge powers and factorials that can stall sympy."""
    if len(text) > MATH_VERIFY_MAX_CHARS or _HUGE_FACTORIAL.search(text):
        return False
    for power in _POWER.finditer(text):
        exponent = power.group("braced") or power.group("paren") or power.group("bare") or ""
        if power.group("chain") or re.search(r"\^|\*\*|\d{4,}", exponent):
            return False
    return True


def _signal_deadline_usable() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


DEADLINE_TIMER = getattr(signal, "ITIMER_PROF", None)
"""The process's CPU time (user and system): on a loaded machine the wall clock runs on while the
grading waits for a core, and a wall-clock deadline would turn right answers into timeouts."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise MathVerifyTimeout after `seconds` of CPU time (main thread only; elsewhere no limit is set)."""
    if not _signal_deadline_usable() or signal.getitimer(DEADLINE_TIMER)[0] > 0:
        yield  # off the main thread, or someone else's timer is running: the input guard protects
        return
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise MathVerifyTimeout

    previous = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(DEADLINE_TIMER, seconds)
    try:
        yield
    finally:
        signal.setitimer(DEADLINE_TIMER, 0)
        signal.signal(signal.SIGPROF, previous)


class _DropTimeoutDisabledWarning(logging.Filter):
    """siked enforces its own deadline, so math-verify's "timeout is disabled" warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


_math_verify_module: Any = None


def _math_verify() -> Any:
    global _math_verify_module
    if _math_verify_module is None:
        import math_verify

        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutDisabledWarning())
        _math_verify_module = math_verify
    return _math_verify_module


def _as_math(text: str) -> str:
    """Bare LaTeX gets `$...$` so that math-verify's LaTeX reader picks it up."""
    text = text.strip()
    if "$" not in text and "\\(" not in text and any(ch in text for ch in "\\^{"):
        return f"${text}$"
    return text


@dataclass(frozen=True)
class SymbolicResult:
    """What math-verify made of an answer: its value (if a number) and whether it equals the gold."""

    value: float | None
    equal: bool | None
    """None when math-verify could not decide (unreadable answer or gold, guard, deadline)."""
    detail: str | None = None
    gold_readable: bool = True


def math_verify_compare(
    predicted_text: str, gold: float | None, gold_text: str, timeout_s: float, rel_tol: float
) -> SymbolicResult:
    """Read `predicted_text` with math-verify and compare it with the gold.

    A numeric gold is compared with the prediction's numeric value under `answers_match`; a
    non-numeric gold is compared symbolically with `math_verify.verify`.
    """
    if gold is None and not math_verify_safe_input(gold_text):
        return SymbolicResult(None, None, "it is too long or too large for math-verify", False)
    if not math_verify_safe_input(predicted_text):
        return SymbolicResult(None, None, "answer too long or too large for math-verify")
    mv = _math_verify()
    try:
        with time_limit(timeout_s):
            parsed = mv.parse(_as_math(predicted_text), parsing_timeout=None)
            value = _numeric_value(parsed)
            if gold is not None:
                equal = None if value is None else answers_match(value, gold, rel_tol)
            else:
                gold_parsed = mv.parse(_as_math(gold_text), parsing_timeout=None)
                if not _reads_whole(gold_parsed, gold_text):
                    detail = "math-verify cannot read it"
                    return SymbolicResult(value, None, detail, gold_readable=False)
                equal = bool(mv.verify(gold_parsed, parsed, timeout_seconds=None)) if parsed else None
    except MathVerifyTimeout:
        return SymbolicResult(None, None, f"math-verify timed out after {timeout_s:g}s")
    detail = None if equal is not None else f"math-verify cannot read {predicted_text!r} as math"
    return SymbolicResult(value, equal, detail)


def _reads_whole(parsed: list[Any], text: str) -> bool:
    """Whether math-verify read all of `text`; from "2 and 5" it would keep only the 5."""

    def bare(s: str) -> str:
        return re.sub(r"\s+|\$|\\[()\[\]]", "", s).rstrip(".")

    return len(parsed) == 2 and isinstance(parsed[1], str) and bare(parsed[1]) == bare(text)


def _numeric_value(parsed: list[Any]) -> float | None:
    import sympy

    for item in parsed:
        if isinstance(item, sympy.Basic) and getattr(item, "is_number", False):
            try:
                value = complex(item.evalf())
            except (TypeError, ValueError, ArithmeticError):
                continue
            if value.imag == 0 and math.isfinite(value.real):
                return value.real
    return None


# ---------------------------------------------------------------------------------------------
# The grader


@dataclass
class _Pending:
    """A solution waiting for its program's result."""

    index: int
    problem: Problem
    strategy: str
    program: str


class Grader:
    """Judges solutions against gold answers; programs (PoT) run in the given sandbox."""

    def __init__(
        self,
        sandbox: SandboxPool | None = None,
        rel_tol: float = 1e-4,
        use_math_verify: bool = True,
        math_verify_timeout_s: float = 2.0,
    ) -> None:
        if rel_tol <= 0:
            raise ValueError(f"rel_tol must be positive, got {rel_tol}")
        if math_verify_timeout_s <= 0:
            raise ValueError(f"math_verify_timeout_s must be positive, got {math_verify_timeout_s}")
        self.sandbox = sandbox
        self.rel_tol = rel_tol
        self.use_math_verify = use_math_verify
        self.math_verify_timeout_s = math_verify_timeout_s

    @classmethod
    def from_config(cls, cfg: SikedConfig, sandbox: SandboxPool | None) -> Grader:
        grading = cfg.grading
        return cls(
            sandbox=sandbox,
            rel_tol=grading.rel_tol,
            use_math_verify=grading.use_math_verify,
            math_verify_timeout_s=grading.math_verify_timeout_s,
        )

    def grade(self, problem: Problem, strategy: str, solution: str) -> Verdict:
        return self.grade_many([(problem, strategy, solution)])[0]

    def grade_many(
        self,
        items: Sequence[tuple[Problem, str, str]],
        progress: Callable[[int], None] | None = None,
    ) -> list[Verdict]:
        """Grade every (problem, strategy, solution), in order.

        All programs go through one `sandbox.run_many` call. `progress(n)` is called with the number
        of items just graded (an increment, e.g. for `rich.progress.Progress.advance`).
        """
        verdicts: list[Verdict | None] = [None] * len(items)
        pending: list[_Pending] = []
        for index, (problem, strategy_name, solution) in enumerate(items):
            strategy = get_strategy(strategy_name)
            text = strategy.clean(solution)
            reason = strategy.invalid_reason(text)
            if reason is not None:
                verdicts[index] = self._verdict(problem, strategy_name, "invalid", detail=reason)
            elif strategy.executes:
                pending.append(_Pending(index, problem, strategy_name, strategy.gradable_text(text)))
                continue
            else:
                verdicts[index] = self._grade_text(problem, strategy_name, strategy.gradable_text(text))
            if progress:
                progress(1)
        if pending:
            for job, result in zip(pending, self._run_programs(pending, progress), strict=True):
                verdicts[job.index] = self._grade_execution(job.problem, job.strategy, result)
        return [v for v in verdicts if v is not None]

    def _run_programs(
        self, pending: list[_Pending], progress: Callable[[int], None] | None
    ) -> list[ExecResult]:
        if self.sandbox is None:
            raise ValueError(
                f"{len(pending)} solution(s) are programs (strategy {pending[0].strategy!r}) and "
                "need a sandbox to run in: pass Grader(sandbox=SandboxPool(...))"
            )
        return self.sandbox.run_many([job.program for job in pending], progress=progress)

    def _grade_text(self, problem: Problem, strategy: str, text: str) -> Verdict:
        answer = extract_answer(text)
        if answer is None:
            return self._verdict(problem, strategy, "no_answer", detail="no number in the solution")
        return self._judge(problem, strategy, answer)

    def _grade_execution(self, problem: Problem, strategy: str, result: ExecResult) -> Verdict:
        if result.status == "timeout":
            return self._verdict(problem, strategy, "timeout", detail=result.error or "program timed out")
        if result.status == "error":
            return self._verdict(problem, strategy, "error", detail=result.error or "program failed")
        if result.status == "no_answer" or result.answer is None:
            return self._verdict(
                problem, strategy, "no_answer", detail=result.error or "the program set no `answer`"
            )
        if result.answer_float is not None and problem.answer is not None:
            return self._numeric_verdict(problem, strategy, result.answer_float, result.answer)
        return self._judge(problem, strategy, result.answer)

    def _judge(self, problem: Problem, strategy: str, answer: str) -> Verdict:
        """Compare an answer string with the gold: plain parsing first, math-verify second."""
        value = parse_number(answer)
        if problem.answer is not None and value is not None:
            return self._numeric_verdict(problem, strategy, value, answer)
        if not self.use_math_verify:
            if problem.answer is None:
                return self._gold_not_numeric(problem, strategy, answer, value)
            return self._verdict(
                problem, strategy, "no_answer", predicted_text=answer,
                detail=f"answer {answer!r} is not a number (math-verify is off)",
            )
        symbolic = math_verify_compare(
            answer, problem.answer, problem.answer_text, self.math_verify_timeout_s, self.rel_tol
        )
        predicted = value if value is not None else symbolic.value
        if symbolic.equal is None:
            if problem.answer is None and not symbolic.gold_readable:
                return self._gold_not_numeric(problem, strategy, answer, predicted, symbolic.detail)
            detail = symbolic.detail or f"answer {answer!r} is not a number"
            return self._verdict(problem, strategy, "no_answer", predicted_text=answer, detail=detail)
        return self._verdict(
            problem, strategy, "ok", correct=symbolic.equal, predicted=predicted, predicted_text=answer
        )

    def _numeric_verdict(self, problem: Problem, strategy: str, value: float, answer: str) -> Verdict:
        assert problem.answer is not None
        correct = answers_match(value, problem.answer, self.rel_tol)
        return self._verdict(
            problem, strategy, "ok", correct=correct, predicted=value, predicted_text=answer
        )

    def _gold_not_numeric(
        self, problem: Problem, strategy: str, answer: str, value: float | None, why: str | None = None
    ) -> Verdict:
        detail = f"gold answer {problem.answer_text!r} is not a number and {why or 'math-verify is off'}"
        return self._verdict(
            problem, strategy, "error", predicted=value, predicted_text=answer, detail=detail
        )

    @staticmethod
    def _verdict(
        problem: Problem,
        strategy: str,
        status: VerdictStatus,
        correct: bool = False,
        predicted: float | None = None,
        predicted_text: str | None = None,
        detail: str | None = None,
    ) -> Verdict:
        return Verdict(
            problem_id=problem.id,
            strategy=strategy,
            status=status,
            correct=correct,
            predicted=predicted,
            predicted_text=predicted_text,
            detail=detail,
        )

