"""The `reference` teacher: a dataset's own worked solutions written in every strategy, no LLM.

- CoT: the worked solution with calculator annotations removed, then `The answer is N.`
- L2M: GSM8K's socratic sub-questions with the steps answering them. Without socratic data
  (gsm_symbolic), one sub-question per solution line that holds a verified equation; the lines
  in between join the next answer. The sub-question is, in this order of preference:
  1. for `<claim> because <equation>`, the claim with its number asked for
     ("The roller coaster will cost how much per person?");
  2. for `<subject> is <equation>` with no unit after the result, "What is <subject>?";
  3. the sentence holding the equation with the equation asked for
     ("Robert was left with how many pebbles?"), "how many" before a unit, else "how much";
  4. "What is <expression>?".
  The last sub-question is the question's own ask (its last sentence with a question mark).
- PoT: each verified arithmetic step (`siked.teachers.worked_steps`) becomes an assignment; a
  later number equal to an earlier step's result (and not given in the question) refers to that
  step's variable; the last step reaching the gold answer is `answer = ...` and steps after it
  are dropped. GSM8K uses its calculator annotations, falling back to the written equations when
  no annotation reaches the gold. When no step reaches the gold, there is no PoT solution.

Every solution is graded by the same grader and sandbox as an LLM's; origin `teacher:reference`.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Sequence

from siked.data.numbers import format_number
from siked.records import Problem, Solution
from siked.strategies import format_l2m, get_strategy
from siked.teachers.base import SolveContext, Teacher, TeacherError
from siked.teachers.worked_steps import (
    Step,
    Token,
    annotated_steps,
    close,
    literal,
    operator_text,
    question_numbers,
    render,
    strip_annotations,
    written_steps,
)

RESERVED_NAMES = {"answer", "math", "sympy", "Symbol", "Eq", "solve", "solve_it", "sqrt", "pi"}
_DETERMINERS = {"the", "a", "an", "his", "her", "their", "its", "each", "every", "total", "our", "my", "your"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$£€0-9])")
_ABBREVIATIONS = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Jr.", "Sr.", "Prof.", "vs.", "etc.", "e.g.", "i.e.")
_BECAUSE = re.compile(r"\b(because|since)\b", re.IGNORECASE)
_FIND = re.compile(
    r"^(?:(?:first|then|next|now|finally|so),?\s+)?(?:we\s+)?(?:find|calculate|compute|figure out|determine)\s+"
    r"(?P<what>.+?)(?::|\s+by\b|,|$)",
    re.IGNORECASE,
)


def final_answer(problem: Problem) -> str | None:
    return None if problem.answer is None else format_number(problem.answer)


def reference_cot(problem: Problem) -> str | None:
    answer = final_answer(problem)
    if not problem.solution or answer is None:
        return None
    text = strip_annotations(problem.solution).strip()
    return f"{text}\nThe answer is {answer}."


def reference_l2m(problem: Problem) -> str | None:
    answer = final_answer(problem)
    if answer is None:
        return None
    if problem.sub_questions and len(problem.sub_questions) == len(problem.sub_answers):
        pairs = [(q, strip_annotations(a)) for q, a in zip(problem.sub_questions, problem.sub_answers, strict=True)]
        return format_l2m(pairs, answer)
    if not problem.solution:
        return None
    return format_l2m(derived_pairs(problem.solution, problem.question), answer)


def reference_pot(problem: Problem) -> str | None:
    if not problem.solution or problem.answer is None:
        return None
    return program(pot_steps(problem.solution, problem.answer), problem.answer, problem.question)


BUILDERS: dict[str, Callable[[Problem], str | None]] = {
    "cot": reference_cot,
    "l2m": reference_l2m,
    "pot": reference_pot,
}


# -- PoT ------------------------------------------------------------------------------------------


def pot_steps(solution: str, gold: float) -> list[Step]:
    """Annotation steps, or the written equations when no annotation reaches the gold."""
    steps = annotated_steps(solution)
    if not _reaches(steps, gold):
        written = written_steps(solution)
        if _reaches(written, gold) or not steps:
            return written
    return steps


def _reaches(steps: Sequence[Step], gold: float) -> bool:
    return any(close(step.value, gold) or close(step.computed, gold) for step in steps)


def program(steps: Sequence[Step], gold: float, question: str) -> str | None:
    """The steps as a Python program whose `answer` is the last step reaching `gold`."""
    target = next(
        (k for k in range(len(steps) - 1, -1, -1) if close(steps[k].value, gold) or close(steps[k].computed, gold)),
        None,
    )
    if target is None:
        return None
    given = question_numbers(question, plain_only=True)
    earlier: list[tuple[Step, str]] = []
    used: set[str] = set()
    lines = []
    for k, step in enumerate(steps[: target + 1]):
        expression = " ".join(_term(item, step, earlier, given) for item in step.items)
        if k == target:
            lines.append(f"answer = {expression}")
        else:
            name = variable_name(step.name_words, used, k)
            lines.append(f"{name} = {expression}")
            earlier.append((step, name))
    return "\n".join(lines)


def _term(item: Token, step: Step, earlier: list[tuple[Step, str]], given: list[float]) -> str:
    """A number as the variable of the latest earlier step with its value, else as a literal.

    A number given in the question stays a literal (a plain `80` is not the question's `80%`: it
    is what an earlier step computed from it), and so does one whose written unit differs from the
    earlier result's (`12 months/year` is not the `12 days/month` computed before)."""
    if item.kind != "num":
        return operator_text(item)
    if item.percent or any(close(item.value, number) for number in given):
        return literal(item, step.plain_percent)
    for source, name in reversed(earlier):
        if close(source.value, item.value):
            if _units_differ(step.literal_units.get(item.start), source.result_unit):
                break
            return name
    return literal(item, step.plain_percent)


def _units_differ(first: list[str] | None, second: list[str]) -> bool:
    if not first or not second:
        return False
    return first[0].lower().rstrip("s") != second[0].lower().rstrip("s")


def variable_name(words: Sequence[str], used: set[str], index: int) -> str:
    """A unique Python identifier from a step's naming words (`step_3` when there are none)."""
    parts = []
    for word in words:
        cleaned = re.sub(r"[^a-z0-9]", "", word.lower())
        if cleaned and cleaned not in {"the", "a", "an", "of"}:
            parts.append(cleaned)
    name = "_".join(parts[:4])
    if not name or name[0].isdigit():
        name = f"step_{index + 1}"
    if name.startswith("per_"):
        name = f"amount_{name}"
    if keyword.iskeyword(name) or name in RESERVED_NAMES or hasattr(builtins, name):
        name = f"{name}_value"
    unique, suffix = name, 2
    while unique in used:
        unique, suffix = f"{name}_{suffix}", suffix + 1
    used.add(unique)
    return unique


# -- L2M without socratic sub-questions -----------------------------------------------------------


def asked_sentence(question: str) -> str | None:
    """The question's ask: its last sentence ending with a question mark."""
    asks = [s for s in sentences(question) if s.endswith("?")]
    return asks[-1] if asks else None


def sentence_breaks(text: str) -> list[re.Match[str]]:
    """The gaps between sentences; `Ms. Johnson` is no sentence end."""
    return [m for m in _SENTENCE_END.finditer(text) if not text[: m.start()].endswith(_ABBREVIATIONS)]


def sentences(text: str) -> list[str]:
    text = text.strip()
    starts = [0, *(m.end() for m in sentence_breaks(text))]
    ends = [*(m.start() for m in sentence_breaks(text)), len(text)]
    return [text[a:b].strip() for a, b in zip(starts, ends, strict=True) if text[a:b].strip()]


def derived_pairs(solution: str, question: str) -> list[tuple[str, str]]:
    lines = strip_annotations(solution).split("\n")
    steps_by_line: dict[int, list[Step]] = {}
    for step in written_steps(solution):
        steps_by_line.setdefault(step.line, []).append(step)
    ask = asked_sentence(question)
    last = max(steps_by_line, default=None)
    pairs: list[tuple[str, str]] = []
    pending: list[str] = []
    for number, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if number not in steps_by_line:
            pending.append(line)
            continue
        answer = " ".join([*pending, line])
        pending = []
        if number == last and ask:
            pairs.append((ask, answer))
        else:
            pairs.append((sub_question(line, steps_by_line[number][-1]), answer))
    if pending:
        if pairs:
            pairs[-1] = (pairs[-1][0], " ".join([pairs[-1][1], *pending]))
        else:
            pairs.append((ask or "What is the answer to the question?", " ".join(pending)))
    return pairs


def sub_question(line: str, step: Step) -> str:
    """A question that the line answers, built around its (last) equation; see the module doc."""
    asked = "how many" if step.result_unit and not step.result_currency else "how much"
    start, end = _sentence_bounds(line, step.start)
    if find := _FIND.match(line[start: step.start]):
        what = find.group("what").strip()
        if what.lower().startswith(("how ", "what ")):
            return _as_question(what)
        return f"What is {what}?"
    because = _BECAUSE.search(line)
    if because and because.start() < step.start:
        claim = _ask_in_claim(line[: because.start()], step)
        if claim:
            return claim
    if step.subject_words and not step.result_unit:
        subject = list(step.subject_words)
        if subject[0].lower() in _DETERMINERS:
            subject[0] = subject[0].lower()
        verb = "is" if step.copula == "equals" else step.copula
        return f"What {verb} {' '.join(subject)}?"
    if start <= step.start and step.end <= end:
        rest = line[step.end: end]
        if rest.startswith("/"):
            rest = " per " + rest[1:]
        sentence = line[start: step.start] + asked + rest
        return _as_question(sentence)
    return f"What is {render(step.items)}?"


def _ask_in_claim(claim: str, step: Step) -> str | None:
    """`She can invite 6 friends` (result 6) -> `She can invite how many friends?`"""
    pattern = re.compile(r"[$£€]?\d[\d,]*(?:\.\d+)?%?")
    for match in pattern.finditer(claim):
        text = match.group()
        try:
            value = float(text.lstrip("$£€").rstrip("%").replace(",", ""))
        except ValueError:
            continue
        if close(value, step.value):
            rest = claim[match.end():]
            unit_follows = bool(re.match(r"\s+[A-Za-z]", rest)) and text[:1] not in "$£€"
            return _as_question(claim[: match.start()] + ("how many" if unit_follows else "how much") + rest)
    return None


def _sentence_bounds(line: str, position: int) -> tuple[int, int]:
    start = 0
    for match in sentence_breaks(line):
        if match.start() >= position:
            return start, match.start()
        start = match.end()
    return start, len(line)


def _as_question(text: str) -> str:
    text = text.strip().rstrip(".,;:!?").strip()
    return text[:1].upper() + text[1:] + "?"


# -- the teacher --------------------------------------------------------------------------------


class ReferenceTeacher(Teacher):
    """Solutions written from the dataset's worked solutions; one per problem and strategy."""

    backend = "reference"
    uses_llm = False

    @property
    def origin(self) -> str:
        return "teacher:reference"

    def solve(self, problems: Sequence[Problem], context: SolveContext) -> list[Solution]:
        unknown = [name for name in context.strategies if name not in BUILDERS]
        if unknown:
            raise TeacherError(
                f"the reference teacher writes {', '.join(BUILDERS)} only, not {', '.join(unknown)}"
            )
        task = None
        if context.progress is not None:
            task = context.progress.add_task("reference solutions", total=len(problems))
        solutions = []
        for problem in problems:
            for name in context.strategies:
                text = BUILDERS[name](problem)
                if text is not None:
                    solutions.append(
                        Solution(
                            problem_id=problem.id,
                            strategy=name,
                            solution=get_strategy(name).clean(text),
                            origin=self.origin,
                            sample_index=0,
                        )
                    )
            if context.progress is not None and task is not None:
                context.progress.advance(task)
        return solutions
