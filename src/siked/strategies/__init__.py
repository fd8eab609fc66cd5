"""Reasoning strategies: chain of thought (cot), least-to-most (l2m), program of thought (pot)."""

from siked.strategies.base import PROMPT_VERSION, Strategy
from siked.strategies.cot import ChainOfThought
from siked.strategies.format import (
    FREE,
    forced_prefix,
    parse_tagged,
    student_prompt,
    student_target,
)
from siked.strategies.l2m import LeastToMost, format_l2m
from siked.strategies.pot import ProgramOfThought, extract_program
from siked.strategies.registry import get_strategy, register, strategy_names

for _strategy in (ChainOfThought(), LeastToMost(), ProgramOfThought()):
    register(_strategy)

__all__ = [
    "FREE",
    "PROMPT_VERSION",
    "Strategy",
    "extract_program",
    "forced_prefix",
    "format_l2m",
    "get_strategy",
    "parse_tagged",
    "register",
    "strategy_names",
    "student_prompt",
    "student_target",
]
