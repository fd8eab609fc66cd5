"""Read the final answer a model wrote in free text, as a number, and compare numbers.

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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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

