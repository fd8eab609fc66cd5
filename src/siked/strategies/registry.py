"""The strategy registry: a new strategy joins with `register(MyStrategy())`."""

from __future__ import annotations

from siked.strategies.base import Strategy

_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    if strategy.name in _REGISTRY:
        raise ValueError(f"strategy {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown strategy {name!r} (known: {known})") from None


def strategy_names() -> list[str]:
    return list(_REGISTRY)
