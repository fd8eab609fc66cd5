"""The PoT prelude: the names a program can use without importing them, and the warm-up each kind
of worker runs once."""

from __future__ import annotations

import re

BASE_PRELUDE = '''
import math
import cmath
import collections
import datetime
import decimal
import fractions
import functools
import itertools
import operator
import random
import re
import statistics
import string
from math import *
from fractions import Fraction
from decimal import Decimal
'''

SYMPY_PRELUDE = '''
import sympy
from sympy import Eq, N, Rational, Symbol, expand, factor, nsimplify, simplify, solve, symbols


class _Solution(dict):
    """Solutions keyed by sympy symbols; a symbol's name works as a key too."""

    def __missing__(self, key):
        if isinstance(key, str):
            for symbol, value in self.items():
                if str(symbol) == key:
                    return value
        raise KeyError(key)


def solve_it(equations, variables):
    """Solve equations for variables with sympy; the first solution as {variable: value}.

    A variable that the solution leaves free maps to itself; with no solution every variable maps
    to None.
    """
    equations = list(equations) if isinstance(equations, (list, tuple, set)) else [equations]
    variables = list(variables) if isinstance(variables, (list, tuple)) else [variables]
    solutions = solve(equations, variables, dict=True)
    if not solutions:
        return _Solution({v: None for v in variables})
    first = solutions[0]
    return _Solution({v: first.get(v, v) for v in variables})
'''

PRELUDE = BASE_PRELUDE + SYMPY_PRELUDE
"""Every name a program can use without importing it (what one interpreter would run first)."""

SYMPY_NAMES = frozenset({"sympy", "Eq", "N", "Rational", "Symbol", "expand", "factor", "nsimplify",
                         "simplify", "solve", "symbols", "solve_it", "_Solution"})
"""Prelude names that need sympy: a program naming any of them runs on a sympy worker."""
SYMPY_WORD = re.compile(r"\b(?:" + "|".join(sorted(SYMPY_NAMES)) + r")\b")
"""Fallback of `needs_sympy` for code that does not tokenize (it fails anyway, on either kind)."""

BASE_WARMUP = """
float(Fraction(1, 3) + Fraction(1, 6)); statistics.mean([1, 2]); Decimal("0.5") * 2
"""
SYMPY_WARMUP = """
_x, _y = symbols("_x _y")
solve_it([Eq(_x + _y, 10), Eq(_x - _y, 2)], [_x, _y])
float(Rational(1, 3) + Fraction(1, 6)); simplify(2 * _x / 2); N(sympy.sqrt(2))
"""
