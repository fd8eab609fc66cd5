"""Arithmetic steps read out of a dataset's worked solution.

Two sources:

- GSM8K calculator annotations `<<48/2=24>>` (exact: every annotation in GSM8K evaluates to its
  stated result; a leading operator as in `<<+30+46=76>>` is read as a unary sign);
- equations written in the text, as in gsm_symbolic (`35 × 3 = 105`, `$400,000 x 8/100 = $32,000`,
  `6 days/week * 2 weeks/month = 12 days/month`). Words between the numbers are dropped, an
  operator directly followed by a word is part of a unit (`days/week`, `120-page`) and dropped too,
  `x`/`×`/`·` multiply, `÷` divides, `^` raises, `N%` is `N / 100`. Of the numbers and operators
  left before an `=`, the longest tail that evaluates to the number after the `=` is the step;
  an equation whose arithmetic does not reproduce its stated result is skipped, so every step is
  verified arithmetic.

Each step remembers where it is (line, character span) and a few words that name its result
(the unit after it, or the subject of `<subject> is <expr>`), used for variable names and
least-to-most sub-questions.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass, field

ANNOTATION = re.compile(r"<<([^<>]*)>>")
_TOKEN = re.compile(
    r"(?P<num>[$£€]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?|[$£€]?\.\d+%?)"
    r"|(?P<op>\*\*|[-+*/×÷^()=−–·])"
    r"|(?P<word>[A-Za-z][A-Za-z'’]*)"
    r"|(?P<punct>\S)"
)
_OP_TEXT = {"×": "*", "·": "*", "÷": "/", "^": "**", "−": "-", "–": "-", "x": "*", "X": "*"}
_BOUNDARY = {".", ",", ";", ":", "?", "!"}
_COPULAS = {"is", "are", "was", "were", "equals"}
_NUMBER_WORDS = {"half": "0.5", "twice": "2", "double": "2", "triple": "3", "quarter": "0.25"}
_NAME_STOPWORDS = {
    "the", "a", "an", "of", "his", "her", "their", "its", "to", "be", "is", "are", "was", "were",
    "that", "this", "these", "those", "so", "then", "thus", "and", "in", "for", "on", "at", "by",
    "with", "from", "he", "she", "they", "it", "which", "will", "would", "has", "have", "had",
}


def strip_annotations(text: str) -> str:
    return ANNOTATION.sub("", text)


@dataclass(frozen=True)
class Token:
    kind: str  # num, op, word, punct
    text: str
    start: int
    end: int

    @property
    def value(self) -> float:
        return float(self.text.lstrip("$£€").rstrip("%").replace(",", ""))

    @property
    def percent(self) -> bool:
        return self.text.endswith("%")

    @property
    def currency(self) -> bool:
        return self.text[:1] in "$£€"


@dataclass
class Step:
    """One verified arithmetic step: `items` (numbers and operators) evaluate to `value`."""

    items: list[Token]
    value: float
    """The result as the solution states it."""
    computed: float
    line: int
    start: int = 0
    """Character span of `<expression> = <result>` in the (annotation-free) line."""
    end: int = 0
    name_words: list[str] = field(default_factory=list)
    """Words naming the result: the subject of `<subject> is <expr>`, else the unit after it."""
    subject_words: list[str] = field(default_factory=list)
    copula: str | None = None
    result_currency: bool = False
    result_unit: list[str] = field(default_factory=list)
    plain_percent: bool = False
    """Percent signs are read as plain numbers in this step (its result is in percent too)."""
    literal_units: dict[int, list[str]] = field(default_factory=dict)
    """Unit words written after each number of the expression, by the number's start offset."""


def tokenize(text: str) -> list[Token]:
    tokens = [Token(m.lastgroup or "punct", m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    tokens = [_as_times(tokens, i) for i in range(len(tokens))]
    return [_number_word(tokens, i) for i in range(len(tokens))]


def _number_word(tokens: list[Token], i: int) -> Token:
    """`half * 188 = 94`: a number word directly before a multiplication is that number."""
    token = tokens[i]
    value = _NUMBER_WORDS.get(token.text.lower()) if token.kind == "word" else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if value is None or after is None or after.kind != "op" or operator_text(after) != "*":
        return token
    return Token("num", value, token.start, token.end)


def _as_times(tokens: list[Token], i: int) -> Token:
    """`x` / `X` between a number (words may intervene) and a number is multiplication."""
    token = tokens[i]
    if token.kind != "word" or token.text not in ("x", "X"):
        return token
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if after is None or not (after.kind == "num" or after.text == "("):
        return token
    for before in reversed(tokens[:i]):
        if before.kind == "num" or before.text == ")":
            return Token("op", token.text, token.start, token.end)
        if before.kind != "word":
            break
    return token


# -- safe arithmetic ----------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def evaluate(expression: str) -> float | None:
    """The value of a pure arithmetic expression, or None (syntax, names, division by zero, ...)."""
    try:
        tree = ast.parse(expression, mode="eval")
        value = _eval(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("power too large")
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return float(_UNARY[type(node.op)](_eval(node.operand)))
    raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def matches_stated(computed: float, stated: Token, in_percent: bool = False) -> bool:
    """The computed value is what the text states (allowing the stated rounding, e.g. 10/3 = 3.33)."""
    value = stated.value
    if close(computed, value) or (stated.percent and not in_percent and close(computed, value / 100)):
        return True
    decimals = len(stated.text.rstrip("%").partition(".")[2])
    return decimals > 0 and abs(computed - value) <= 0.5 * 10**-decimals + 1e-12


def literal(token: Token, plain_percent: bool = False) -> str:
    """The number as a Python literal: no currency, no thousands separators, no leading zeros.

    `N%` is `(N / 100)`, or plain `N` with `plain_percent` (in `x * 100% = 40%` both sides are
    written in percent)."""
    text = token.text.lstrip("$£€").rstrip("%").replace(",", "")
    whole, dot, fraction = text.partition(".")
    whole = whole.lstrip("0") or "0"
    number = f"{whole}.{fraction}" if dot else whole
    return f"({number} / 100)" if token.percent and not plain_percent else number


def operator_text(token: Token) -> str:
    return _OP_TEXT.get(token.text, token.text)


def render(items: list[Token], plain_percent: bool = False) -> str:
    return " ".join(literal(t, plain_percent) if t.kind == "num" else operator_text(t) for t in items)


# -- GSM8K calculator annotations ---------------------------------------------------------------


def annotated_steps(solution: str) -> list[Step]:
    """Steps from `<<expr=result>>` annotations, in order; unparsable ones are skipped."""
    steps = []
    for line_number, line in enumerate(solution.split("\n")):
        for match in ANNOTATION.finditer(line):
            expression, sep, result = match.group(1).rpartition("=")
            if not sep:
                continue
            result_tokens = [t for t in tokenize(result) if t.kind != "punct"]
            items = [t for t in tokenize(expression) if t.kind in ("num", "op")]
            if len(result_tokens) == 2 and result_tokens[0].text in "-−" and result_tokens[1].kind == "num":
                stated, sign = result_tokens[1], -1.0
            elif len(result_tokens) == 1 and result_tokens[0].kind == "num":
                stated, sign = result_tokens[0], 1.0
            else:
                continue
            computed = evaluate(render(items)) if items else None
            if computed is None or not matches_stated(sign * computed, stated):
                continue
            after = line[match.end():]
            steps.append(
                Step(
                    items=items,
                    value=sign * stated.value,
                    computed=computed,
                    line=line_number,
                    name_words=_words_after_result(after),
                )
            )
    return steps


def _words_after_result(after: str) -> list[str]:
    """The unit words following a result whose number starts `after` (`24 clips in May.`)."""
    tokens = tokenize(after)
    if tokens and tokens[0].kind == "num":
        tokens = tokens[1:]
    return _unit_words(tokens)


def _unit_words(tokens: list[Token], limit: int = 3) -> list[str]:
    words: list[str] = []
    for token in tokens:
        if token.kind == "word":
            words.append(token.text)
        elif token.text == "/":
            words.append("per")
        else:
            break
        if len(words) >= limit:
            break
    while words and words[-1].lower() in _NAME_STOPWORDS | {"per"}:
        words.pop()
    return words


# -- equations written in the text --------------------------------------------------------------


def written_steps(solution: str) -> list[Step]:
    """Steps from `expr = result` equations in the text (annotations removed first)."""
    steps = []
    for line_number, line in enumerate(strip_annotations(solution).split("\n")):
        tokens = tokenize(line)
        segment_start = 0
        for i, token in enumerate(tokens):
            if token.kind == "punct" and token.text in _BOUNDARY:
                segment_start = i + 1
                continue
            if token.text != "=":
                continue
            step = _equation(tokens, segment_start, i, line_number)
            segment_start = i + 1
            if step is not None:
                steps.append(step)
    return steps


def _equation(tokens: list[Token], begin: int, equals: int, line_number: int) -> Step | None:
    result = _result_after(tokens, equals)
    if result is None:
        return None
    stated, sign, result_end = result
    kept = _arithmetic_items(tokens[begin:equals])
    for start in range(len(kept)):
        items = kept[start:]
        if not any(t.kind == "op" and t.text not in "()" for t in items[1:]):
            break  # a bare number is no step; shorter tails have no operator either
        plain = stated.percent and any(t.kind == "num" and t.percent for t in items)
        computed = evaluate(render(items, plain_percent=plain))
        if computed is not None and matches_stated(sign * computed, stated, in_percent=plain):
            first = items[0]
            before = [t for t in tokens[begin:equals] if t.end <= first.start]
            subject, copula = _copula_subject(before)
            unit = _unit_words(tokens[result_end:])
            position = {t.start: k for k, t in enumerate(tokens)}
            literal_units = {
                t.start: _unit_words(tokens[position[t.start] + 1: equals]) for t in items if t.kind == "num"
            }
            return Step(
                items=items,
                value=sign * stated.value,
                computed=computed,
                line=line_number,
                start=first.start,
                end=tokens[result_end - 1].end,
                name_words=(subject + unit if len(subject) == 1 else subject) or unit,
                subject_words=subject,
                copula=copula,
                result_currency=stated.currency,
                result_unit=unit,
                plain_percent=plain,
                literal_units=literal_units,
            )
    return None


def _result_after(tokens: list[Token], equals: int) -> tuple[Token, float, int] | None:
    """(stated result, sign, index just past it) for the `=` at `equals`."""
    after = tokens[equals + 1: equals + 3]
    if after and after[0].kind == "num":
        return after[0], 1.0, equals + 2
    if len(after) == 2 and after[0].text in "-−" and after[1].kind == "num":
        return after[1], -1.0, equals + 3
    return None


def _arithmetic_items(segment: list[Token]) -> list[Token]:
    """Numbers and operators of an equation's left side; words and unit operators dropped."""
    items = []
    for i, token in enumerate(segment):
        if token.kind == "num":
            items.append(token)
        elif token.kind == "op" and token.text != "=":
            following = segment[i + 1] if i + 1 < len(segment) else None
            if token.text not in "()" and following is not None and following.kind == "word":
                continue  # days/week, 120-page
            items.append(token)
    return items


def _copula_subject(before: list[Token]) -> tuple[list[str], str | None]:
    """`The brokerage fee is <expr>` -> (["brokerage", "fee"], "is")."""
    if len(before) < 2 or before[-1].kind != "word" or before[-1].text.lower() not in _COPULAS:
        return [], None
    words = []
    for token in reversed(before[:-1]):
        if token.kind != "word":
            break
        words.insert(0, token.text)
    while words and words[0].lower() in {"so", "then", "thus", "therefore", "and", "hence", "now"}:
        words.pop(0)
    if not words or (len(words) == 1 and words[0].lower() in {"it", "he", "she", "they", "this", "that", "there", "which"}):
        return [], None
    return words, before[-1].text.lower()


def question_numbers(question: str, plain_only: bool = False) -> list[float]:
    """The numbers written in the question; with `plain_only`, not those written as `N%`."""
    return [t.value for t in tokenize(question) if t.kind == "num" and not (plain_only and t.percent)]
