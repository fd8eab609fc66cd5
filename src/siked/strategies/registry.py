"""The strategy registry: a new strategy joins with `register(MyStrategy())`."""

from __future__ import annotations

from siked.registry import Registry
from siked.strategies.base import Strategy

STRATEGIES: Registry[Strategy] = Registry("strategy")


def register(strategy: Strategy) -> Strategy:
    STRATEGIES.register(strategy.name, strategy)
    return strategy


def get_strategy(name: str) -> Strategy:
    return STRATEGIES[name]


def strategy_names() -> list[str]:
    return list(STRATEGIES)
