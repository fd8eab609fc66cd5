"""The document model (tables, plots, notices, ...) that Markdown and HTML are rendered from, and
the formatting of its cells."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siked.metrics import EvalResult, RoutingGroup

DPI = 100
BEST_MARK = "★"
MISSING = "—"


# --------------------------------------------------------------------------------------------------------
# The document model, rendered to Markdown and to HTML.


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    text_columns: int = 1
    """Leading columns aligned left (labels); the rest hold numbers and align right."""


@dataclass
class Plot:
    name: str
    """File stem under RUN_DIR/plots/."""
    caption: str
    png: bytes


@dataclass
class Notice:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Details:
    summary: str
    text: str


@dataclass
class Subheading:
    text: str


@dataclass
class Fields:
    """Labelled values taken verbatim from the run's data (a question, an answer): plain text, never
    markup, so each renderer escapes them."""

    items: list[tuple[str, str]]


@dataclass
class Code:
    """Verbatim text (a solution, a program), shown as a code block."""

    text: str
    language: str = ""


Block = str | Table | Plot | Notice | Bullets | Details | Subheading | Fields | Code


@dataclass
class Section:
    title: str
    blocks: list[Block]

    def __post_init__(self) -> None:
        # Plot builders return None when there is nothing to draw.
        self.blocks = [block for block in self.blocks if block is not None]


# --------------------------------------------------------------------------------------------------------
# Formatting.


def fmt_pct(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.1f}%"


def fmt_best_single(result: RoutingGroup) -> str:
    """`pot 37.5%`: the best single strategy and its forced accuracy (older records: the accuracy only)."""
    if result.best_single_strategy is None:
        return fmt_pct(result.best_single_accuracy)
    return f"{result.best_single_strategy} {fmt_pct(result.best_single_accuracy)}"


def fmt_gap(result: RoutingGroup) -> str:
    gap = result.gap()
    return MISSING if gap is None else f"{100 * gap:.1f}"


def fmt_num(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def fmt_score(result: EvalResult | None) -> str:
    """`62.5% (5/8)`."""
    if result is None or result.rate is None:
        return MISSING
    return f"{fmt_pct(result.rate)} ({result.correct}/{result.total})"


def fmt_ratio(part: int | None, whole: int | None) -> str:
    if part is None:
        return MISSING
    if not whole:
        return str(part)
    return f"{part} / {whole} ({fmt_pct(part / whole)})"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"


def fmt_mixing(mixing: dict[str, Any]) -> str:
    """`unbiased line, adaptive mixing (max_per_strategy: 1)`; older runs without a line as recorded."""
    if not mixing:
        return MISSING
    mode, line = mixing.get("mode", MISSING), mixing.get("line")
    shown = {key: value for key, value in mixing.items()
             if key not in ("mode", "line") and not (key == "priority" and line != "biased")}
    rest = ", ".join(f"{key}: {value}" for key, value in shown.items())
    head = f"{line} line, {mode} mixing" if line else str(mode)
    return f"{head} ({rest})" if rest else head


def iteration_list(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


