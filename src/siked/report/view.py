"""What one run says: its metrics (read through `siked.metrics`), its config, and the facts every
section needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from siked.errors import one_line
from siked.metrics import NO_STRATEGY, VALIDATION, Iteration, Metrics, MetricsError, run_label
from siked.names import ModelName

CONFIG_FILE = "config.yaml"
STRATEGY_ORDER = ("cot", "l2m", "pot")
STATUS_ORDER = ("ok", "no_answer", "invalid", "timeout", "error")


ReportError = MetricsError
"""A run directory that cannot be reported on; the message names the file (and the field)."""


def read_config(run_dir: Path) -> str | None:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} cannot be read: {one_line(exc)}") from None


@dataclass
class RunView:
    run_dir: Path
    metrics: Metrics
    config_text: str | None
    best: Iteration | None
    best_recorded: bool
    """False: metrics.json names no (valid) best iteration and the report picked one by validation."""
    datasets: list[str]

    @property
    def iterations(self) -> list[Iteration]:
        return self.metrics.iterations

    @property
    def best_label(self) -> str:
        label = run_label(self.metrics.run)
        return f"{label} (iteration {self.best.iteration})" if self.best else label


def make_view(run_dir: Path, metrics: Metrics, config_text: str | None) -> RunView:
    best, recorded = metrics.best()
    return RunView(run_dir, metrics, config_text, best, recorded, dataset_names(metrics))


def model_folder(run_dir: Path, metrics: Metrics, iteration: int) -> Path:
    """Where iteration `iteration`'s model keeps its outputs (`iter<k>/eval/...`); a lone baseline's
    one iteration is its chosen model, in `baselines/<method>`."""
    method = metrics.run.method or "siked"
    name = ModelName(baseline=method) if method != "siked" else ModelName(iteration=iteration)
    return run_dir / str(name)


def dataset_names(metrics: Metrics) -> list[str]:
    """Every evaluation set in order of first appearance, validation first."""
    names: dict[str, None] = {}
    for it in metrics.iterations:
        names.update(dict.fromkeys(it.eval))
    for baseline in metrics.baselines.values():
        names.update(dict.fromkeys(baseline.eval))
    names.update(dict.fromkeys(metrics.routing))
    ordered = [name for name in names if name != VALIDATION]
    return [VALIDATION, *ordered] if VALIDATION in names else ordered


def ordered_strategies(names: Iterable[str]) -> list[str]:
    """cot, l2m, pot first, then any other strategy alphabetically, `none` last."""
    seen = set(names)
    known = [name for name in STRATEGY_ORDER if name in seen]
    others = sorted(seen - set(STRATEGY_ORDER) - {NO_STRATEGY})
    return known + others + ([NO_STRATEGY] if NO_STRATEGY in seen else [])


def ordered_statuses(names: Iterable[str]) -> list[str]:
    seen = set(names)
    return [s for s in STATUS_ORDER if s in seen] + sorted(seen - set(STATUS_ORDER))

