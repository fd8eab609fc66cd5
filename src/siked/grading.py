"""Grade solutions: read the final answer a model wrote (or run its program) and compare it with the gold.

Reading an answer from free text (`extract_answer`), in this order:

1. Answer markers and boxes, the one nearest the end of the text first: `#### N`, `The answer is N`,
   `Final answer: ...`, `Answer: N`, `\\boxed{N}`. After a marker the answer is the number (or LaTeX
   math) that follows it; `18 + 4 = 22` reads 22. When the marker is followed by a restatement
   ("Final answer: The total number of apples Tom has is 42.") the number of that sentence counts,
   but only if no number follows later in the text.
2. Otherwise the result of the last line holding a number: the number after its last `=`
   ("so it takes 120/24 = 5 hours to read 120 pages" reads 5), else its last number.

Numbers may carry thousands separators, a currency sign, a percent sign, a unit or a trailing period,
and may be fractions (`3/4`, `\\frac{3}{4}`, `1 1/2`). Numeric equality is relative (`rel_tol`); an
integer gold also needs the prediction to round to it, so `17.999999` matches 18 but `1000050` never
matches 1000000.

math-verify is a fallback only, for answers plain parsing cannot read (`\\sqrt{2}`, `2^{10}`,
`\\frac34`) and for golds that are not a single number. Its own time limit relies on `signal.alarm`
(whole seconds, main thread only, one alarm per call), so siked turns it off and instead runs the
whole fallback (parse gold, parse prediction, compare, evaluate) under one SIGALRM deadline of
`math_verify_timeout_s` when grading in the main thread. Signals cannot stop some C-level big-integer
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

from siked.records import Problem, Verdict, VerdictStatus
from siked.strategies import get_strategy

if TYPE_CHECKING:
    from siked.config import SikedConfig
    from siked.sandbox import ExecResult, SandboxPool

MATH_VERIFY_MAX_CHARS = 200
"""Longer answers are never handed to math-verify (a final answer is short)."""

# ---------------------------------------------------------------------------------------------
# Reading numbers

_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_LATEX_FRACTION = rf"\\[dt]?frac\{{\s*-?(?:{_UNSIGNED})\s*\}}\{{\s*-?(?:{_UNSIGNED})\s*\}}"

# A number as it appears in running text: sign and currency in either order, then a LaTeX
# fraction, a mixed number, a plain fraction or a plain number, then an optional percent sign.
_TOKEN = re.compile(
    rf"""
    (?<![\w.])
    (?:-(?=[\\$\d.]))?(?:\\?\$\s?)?(?:-(?=[\d.]))?
    (?:
        {_LATEX_FRACTION}
      | \d+\s(?P<fraction>(?P<numerator>\d+)/(?P<denominator>\d+))(?!\.?\d)
      | (?:{_UNSIGNED})/(?:{_UNSIGNED})(?!\.?\d)
      | (?:{_UNSIGNED})(?:[eE][-+]?\d+(?!\w|\.\d))?
    )
    (?:\s?\\?%)?
    """,
    re.VERBOSE,
)

_NUMBER_BODY = re.compile(
    rf"""
    ^(?:[a-z]\w*\s*=\s*)?                                  # "x = 5"
    (?P<sign>[-+])?\s*(?:\$|€|£|usd\s)?\s*(?P<sign2>-)?\s*
    (?:
        (?P<mixed_whole>\d+)\s+(?:
            \\[dt]?frac\{{\s*(?P<mixed_tex_num>\d+)\s*\}}\{{\s*(?P<mixed_tex_den>\d+)\s*\}}
          | (?P<mixed_num>\d+)\s*/\s*(?P<mixed_den>\d+)
        )
      | \\[dt]?frac\{{\s*(?P<tex_num>-?(?:{_UNSIGNED}))\s*\}}\{{\s*(?P<tex_den>-?(?:{_UNSIGNED}))\s*\}}
      | (?P<num>{_UNSIGNED})\s*/\s*(?P<den>{_UNSIGNED})
      | (?P<plain>(?:{_UNSIGNED})(?:e[-+]?\d+)?)
    )
    \s*(?:%|percent\b)?
    (?:\s*[a-z][a-z\s.'/-]*)?$                             # a unit: "42 pounds", "3 apples each"
    """,
    re.VERBOSE | re.IGNORECASE,
)

_LATEX_WRAPPERS = re.compile(r"\\(?:boxed|fbox|text|textbf|mathrm|mathbf|mbox)\s*\{")
_LATEX_SPACING = re.compile(r"\\[!,;: ]|~|\\left|\\right|\^\s*\{?\\circ\}?|\\displaystyle")
_MATH_DELIMITERS = re.compile(r"^\s*(?:\$\$?|\\\(|\\\[)(?P<body>.*?)(?:\$\$?|\\\)|\\\])\s*\.?\s*$", re.S)


def _normalize(text: str) -> str:
    return text.replace("\u2212", "-").replace("\u00a0", " ").replace("\u2009", " ").replace("\u202f", " ")


def _brace_content(text: str, open_at: int, reach: int = 1000) -> tuple[str, int] | None:
    """The text inside the braces opening at `open_at`, and the index after the closing brace.

    None when they do not close within `reach` characters (a final answer is short).
    """
    depth = 0
    for i in range(open_at, min(len(text), open_at + reach)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i], i + 1
    return None


def _unwrap_latex(text: str) -> str:
    """`\\boxed{\\text{42 apples}}` -> `42 apples`: drop wrapper commands, keep their content."""
    while match := _LATEX_WRAPPERS.search(text):
        inner = _brace_content(text, match.end() - 1)
        if inner is None:
            return text[: match.start()] + text[match.end() :]
        content, end = inner
        text = text[: match.start()] + content + text[end:]
    return text


def _clean_number_text(text: str) -> str:
    text = _normalize(text).strip()
    if match := _MATH_DELIMITERS.match(text):
        text = match.group("body")
    text = _unwrap_latex(text)
    text = _LATEX_SPACING.sub("", text)
    text = text.replace("\\%", "%").replace("\\$", "$").replace("{,}", ",").replace("**", "")
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip()


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _ratio(numerator: str, denominator: str) -> float | None:
    bottom = _to_float(denominator)
    return _to_float(numerator) / bottom if bottom else None


def parse_number(text: str) -> float | None:
    """A single number written in `text`, or None.

    >>> parse_number("$1,234.50"), parse_number("25%"), parse_number("3/4"), parse_number("\\\\frac{3}{4}")
    (1234.5, 25.0, 0.75, 0.75)
    """
    if not text or len(text) > 500:
        return None
    body = _clean_number_text(text)
    match = _NUMBER_BODY.match(body)
    if match is None:
        return None
    groups = match.groupdict()
    if groups["plain"] is not None:
        value: float | None = _to_float(groups["plain"])
    elif groups["num"] is not None:
        value = _ratio(groups["num"], groups["den"])
    elif groups["tex_num"] is not None:
        value = _ratio(groups["tex_num"], groups["tex_den"])
    else:
        numerator = groups["mixed_num"] or groups["mixed_tex_num"]
        denominator = groups["mixed_den"] or groups["mixed_tex_den"]
        fraction = _ratio(numerator, denominator)
        value = None if fraction is None else _to_float(groups["mixed_whole"]) + fraction
    if value is None or not math.isfinite(value):
        return None
    negative = (groups["sign"] == "-") != (groups["sign2"] == "-")
    return -value if negative else value


def answers_match(predicted: float, gold: float, rel_tol: float = 1e-4) -> bool:
    """Relative equality; an integer gold also needs the prediction to round to it."""
    if not (math.isfinite(predicted) and math.isfinite(gold)):
        return False
    if not math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-9):
        return False
    return not float(gold).is_integer() or round(predicted) == gold


# ---------------------------------------------------------------------------------------------
# Finding the final answer in free text

_MARKER = re.compile(
    r"""
    \#\#\#\#
    | \bfinal\s+answer\b(?:\s+(?:is|would\s+be|will\s+be)\b)?
    | \banswer\s+(?:is|would\s+be|will\s+be|should\s+be)\b
    | \banswer\s*[:=]
    """,
    re.VERBOSE | re.IGNORECASE,
)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# An arithmetic chain right after a marker: "18 + 4 = 22" answers 22.
_CHAIN = re.compile(r"^(?:[\s\d.,$%+\-*/×÷()]|\\times|\\cdot|\\div)*=\s*")
# In a restated answer, the number after a verb is the one that answers.
_STATED = re.compile(
    r"\b(?:is|are|was|were|be|has|have|had|equals|makes|gets|costs|needs|totals?)\s+"
    r"(?:about\s+|exactly\s+|only\s+)?(?=\S)"
)
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)")
_LEADING_NOISE = " \t\r\n*_:>"
_MARKER_REACH = 400
"""How far after a marker the answer is looked for (keeps reading linear on degenerate text)."""


@dataclass(frozen=True)
class _Reading:
    answer: str
    weak: bool
    """True for an answer found in a restatement rather than right after the marker."""
    end: int
    """Where the reading's sentence ends in the text."""


def _token_text(token: re.Match[str]) -> str:
    """The number a token wrote; `8 16/2` is no mixed number, so only its fraction counts."""
    if token.group("fraction") and int(token.group("numerator")) >= int(token.group("denominator")):
        return token.group("fraction")
    return token.group().strip()


def _first_token(text: str, at: int = 0) -> re.Match[str] | None:
    return _TOKEN.match(text, at)  # match(), not a slice, so the look-behind still sees text[at - 1]


def _leading_math(line: str) -> str | None:
    """The content of LaTeX math opening the line (`$\\sqrt{2}$`, `\\(x\\)`), if it is math."""
    if line.startswith(("\\(", "\\[")):
        close = line.find("\\)" if line[1] == "(" else "\\]", 2)
        return line[2:close].strip() if close != -1 else None
    if line.startswith("$"):
        opener = "$$" if line.startswith("$$") else "$"
        close = re.compile(r"(?<!\\)" + re.escape(opener)).search(line, len(opener))
        body = line[len(opener) : close.start()] if close else ""
        if any(ch in body for ch in "\\^{"):
            return body.strip()
    return None


def _read_after_marker(text: str, start: int) -> _Reading | None:
    """The answer written right after an answer marker ending at `start`."""
    while start < len(text) and text[start] in _LEADING_NOISE:
        start += 1
    line_end = text.find("\n", start, start + _MARKER_REACH)
    line_end = min(len(text), start + _MARKER_REACH) if line_end == -1 else line_end
    line = text[start:line_end]
    if (math_body := _leading_math(line)) is not None and math_body:
        return _Reading(math_body, weak=False, end=line_end)
    chain = _CHAIN.match(line)
    if chain and any(ch.isdigit() for ch in chain.group()):
        if token := _first_token(line, chain.end()):
            return _Reading(_token_text(token), weak=False, end=start + token.end())
    if token := _first_token(line):
        return _Reading(_token_text(token), weak=False, end=start + token.end())
    return _read_restatement(text, start, line)


def _read_restatement(text: str, start: int, line: str) -> _Reading | None:
    """"The total number of apples Tom has is 42." -> 42 (the stated number, else the last one)."""
    position = 0
    for boundary in [*_SENTENCE_END.finditer(line), None]:
        sentence_end = boundary.end() if boundary else len(line)
        sentence = line[position:sentence_end]
        tokens = list(_TOKEN.finditer(sentence))
        if tokens:
            stated = [t for verb in _STATED.finditer(sentence) if (t := _first_token(sentence, verb.end()))]
            chosen = (stated or tokens)[-1]
            return _Reading(_token_text(chosen), weak=True, end=start + sentence_end)
        position = sentence_end
    return None


def _read_box(text: str, box: re.Match[str]) -> _Reading | None:
    inner = _brace_content(text, box.end() - 1)
    if inner is None or not inner[0].strip():
        return None
    return _Reading(inner[0].strip(), weak=False, end=inner[1])


def extract_answer(text: str) -> str | None:
    """The final answer written in free text, as written (`"$1,234.50"`, `"\\\\frac{3}{4}"`), or None."""
    if not text:
        return None
    text = _normalize(text)
    anchors = [(m.start(), m) for m in _MARKER.finditer(text)]
    anchors += [(m.start(), m) for m in _BOX.finditer(text)]
    last_number_at = max((m.start() for m in _TOKEN.finditer(text)), default=-1)
    for _, anchor in sorted(anchors, key=lambda item: item[0], reverse=True):
        is_box = _BOX.fullmatch(anchor.group()) is not None
        reading = _read_box(text, anchor) if is_box else _read_after_marker(text, anchor.end())
        if reading is None:
            continue
        if reading.weak and last_number_at >= reading.end:
            continue  # a restated sentence with more numbers after it is not the final answer
        return reading.answer
    return _last_number(text)


def _last_number(text: str) -> str | None:
    """The result of the last line with a number: what follows its last `=`, else its last number.

    "It will take her 120/24 = 5 hours to read 120 pages." answers 5, not 120.
    """
    lines = [line for line in text.splitlines() if _TOKEN.search(line)]
    if not lines:
        return None
    line = lines[-1]
    equals = line.rfind("=")
    if equals != -1:
        result = _TOKEN.search(line, equals)
        if result and not re.search(r"[A-Za-z]{2,}", line[equals : result.start()]):
            return _token_text(result)
    return _token_text(list(_TOKEN.finditer(line))[-1])


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


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise MathVerifyTimeout after `seconds` (main thread only; elsewhere no limit is set)."""
    if not _signal_deadline_usable() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield  # off the main thread, or someone else's timer is running: the input guard protects
        return
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise MathVerifyTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
