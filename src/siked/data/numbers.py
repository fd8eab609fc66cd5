"""Turn a dataset's gold answer into a number.

Only golds are handled here: a single number as a dataset writes it, possibly with a currency sign,
a percent sign, thousands separators, a unit in parentheses (`9 (apples)`) or as a fraction (`3/4`).
Anything else (ratios `3:4`, several answers `2 and 5` / `18; 12`, words) is not a single number
and gives None. Extracting an answer from a model's output is the grader's job, not this module's.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_PLAIN = re.compile(rf"^({_NUMBER})$")
_FRACTION = re.compile(rf"^({_NUMBER})\s*/\s*({_NUMBER})$")
_MIXED = re.compile(r"^([0-9]+)\s+([0-9]+)\s*/\s*([0-9]+)$")
_THOUSANDS = re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$")
_TRAILING_UNIT = re.compile(r"\s*\([^()]*\)$")
_MINUS_SIGNS = ("-", "\u2212", "\u2013")


def parse_gold(text: str | int | float | None) -> float | None:
    """The gold as a float, or None when it is not a single number.

    >>> parse_gold("1,234"), parse_gold("$ 5.50"), parse_gold("9 (apples)"), parse_gold("-3/4")
    (1234.0, 5.5, 9.0, -0.75)
    >>> parse_gold("3:4") is None, parse_gold("2 and 5") is None
    (True, True)
    """
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        value = float(text)
        return value if math.isfinite(value) else None
    body = _TRAILING_UNIT.sub("", str(text).strip()).strip()
    sign = 1.0
    if body.startswith(_MINUS_SIGNS):
        sign, body = -1.0, body[1:].lstrip()
    elif body.startswith("+"):
        body = body[1:].lstrip()
    body = body.removeprefix("$").strip()
    if body.startswith(_MINUS_SIGNS) and sign > 0:  # "$-5" is as negative as "-$5"
        sign, body = -1.0, body[1:].lstrip()
    body = body.removesuffix("%").strip()
    value = _unsigned_value(body)
    return None if value is None else sign * value


def _unsigned_value(body: str) -> float | None:
    if "," in body:
        if not _THOUSANDS.match(body):
            return None  # "2, 5" is a list, not 25
        body = body.replace(",", "")
    if _PLAIN.match(body):
        return float(body)
    if match := _FRACTION.match(body):
        numerator, denominator = float(match[1]), float(match[2])
        return numerator / denominator if denominator else None
    if match := _MIXED.match(body):
        whole, numerator, denominator = (float(g) for g in match.groups())
        return whole + numerator / denominator if denominator else None
    return None


def format_number(value: float) -> str:
    """`51.0` -> `51`, `0.5` -> `0.5`: how a numeric gold is shown in `answer_text`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
