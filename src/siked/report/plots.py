"""The plots, drawn on matplotlib's Agg canvas (no display, no global pyplot state) as PNG bytes."""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from siked.metrics import NO_STRATEGY, run_label, validation_curves
from siked.names import ModelName
from siked.report.document import DPI, Plot
from siked.report.view import RunView, ordered_strategies

STRATEGY_COLORS = {"cot": "#4C72B0", "l2m": "#DD8452", "pot": "#55A868", NO_STRATEGY: "#A0A0A0"}
EXTRA_COLORS = ("#8172B3", "#937860", "#DA8BC3", "#CCB974", "#64B5CD", "#C44E52")
METHOD_COLORS = ("#C44E52", "#8172B3", "#CCB974", "#64B5CD", "#937860", "#DA8BC3", "#55A868")
SOURCE_LABELS = ("teacher data", "training mix", "student samples")
SOURCE_COLORS = ("#4C72B0", "#DD8452", "#55A868")
SIKED_COLOR = "#222222"


def strategy_color(name: str, strategies: list[str]) -> str:
    if name in STRATEGY_COLORS:
        return STRATEGY_COLORS[name]
    return EXTRA_COLORS[strategies.index(name) % len(EXTRA_COLORS)]


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def grid_figure(panels: int, max_cols: int, cell_w: float, cell_h: float) -> tuple[Figure, list[Axes]]:
    """A figure of `panels` axes in rows of at most `max_cols`, extra cells hidden."""
    cols = min(panels, max_cols)
    rows = math.ceil(panels / cols)
    figure = new_figure(cell_w * cols, cell_h * rows + 0.5)
    axes = list(figure.subplots(rows, cols, squeeze=False, sharey=True).ravel())
    for spare in axes[panels:]:
        spare.set_visible(False)
    return figure, axes[:panels]


def shared_legend(figure: Figure, axes: list[Axes]) -> None:
    """One legend below the panels, each label once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(
            list(entries.values()), list(entries), loc="outside lower center",
            ncols=min(len(entries), 4), fontsize=8, frameon=False,
        )


def finish(figure: Figure, name: str, caption: str) -> Plot:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return Plot(name, caption, buffer.getvalue())


def style_axes(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    if ax.get_subplotspec().is_first_col():  # panels share their y axis
        ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", alpha=0.3)


def best_legend(view: RunView) -> str:
    rule = view.metrics.best_rule
    return "best (the last iteration: no validation set)" if rule and rule.startswith("last") else (
        "best (chosen on validation)")


def plot_accuracy(view: RunView) -> Plot | None:
    """Accuracy per iteration, one panel per evaluation set, baselines as dashed lines."""
    datasets = [d for d in view.datasets if any(d in it.eval for it in view.iterations)]
    if not datasets:
        return None
    figure, axes = grid_figure(len(datasets), 3, 3.4, 2.6)
    numbers = [it.iteration for it in view.iterations]
    highest = 0.0
    for ax, name in zip(axes, datasets, strict=True):
        points = [(it.iteration, it.eval[name].rate) for it in view.iterations if name in it.eval]
        points = [(n, 100 * rate) for n, rate in points if rate is not None]
        highest = max([highest, *(value for _, value in points)])
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", color=SIKED_COLOR, label="SIKeD")
        best = dict(points).get(view.best.iteration) if view.best else None
        if best is not None:
            ax.plot([view.best.iteration], [best], marker="*", markersize=13, linestyle="none",
                    color="gold", markeredgecolor=SIKED_COLOR, label=best_legend(view))
        for index, (method, baseline) in enumerate(view.metrics.baselines.items()):
            result = baseline.eval.get(name)
            if result is not None and result.rate is not None:
                highest = max(highest, 100 * result.rate)
                ax.axhline(100 * result.rate, linestyle="--", linewidth=1.2,
                           color=METHOD_COLORS[index % len(METHOD_COLORS)], label=f"baseline: {method}")
        style_axes(ax, name, "iteration", "accuracy (%)")
        ax.set_xticks(numbers)
    # Shared y axis, set once every panel is drawn: percent, never narrower than 0-5.
    axes[0].set_ylim(0, min(100.0, max(5.0, 1.15 * highest)))
    shared_legend(figure, axes)
    return finish(figure, "accuracy", "Accuracy per iteration on each evaluation set; dashed: baselines.")


def plot_baselines(view: RunView) -> Plot | None:
    """Grouped bars: each baseline and SIKeD's best iteration, per evaluation set."""
    if not view.metrics.baselines:
        return None
    methods = [(f"baseline: {name}", b.eval) for name, b in view.metrics.baselines.items()]
    if view.best is not None:
        methods.append((view.best_label, view.best.eval))
    datasets = [d for d in view.datasets if any(d in results for _, results in methods)]
    if not datasets:
        return None
    figure = new_figure(min(10.0, 2.0 + 1.2 * len(datasets) * max(1, len(methods)) / 3), 3.2)
    ax = figure.subplots()
    width = 0.8 / len(methods)
    for index, (label, results) in enumerate(methods):
        xs = [i + (index - (len(methods) - 1) / 2) * width for i in range(len(datasets))]
        heights = [100 * (results[d].rate or 0.0) if d in results else 0.0 for d in datasets]
        color = SIKED_COLOR if label == view.best_label else METHOD_COLORS[index % len(METHOD_COLORS)]
        bars = ax.bar(xs, heights, width, color=color, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(datasets)), datasets)
    style_axes(ax, "Baselines vs SIKeD", "", "accuracy (%)")
    ax.margins(y=0.15)
    shared_legend(figure, [ax])
    return finish(figure, "baselines", "Accuracy of each baseline and of SIKeD's best iteration.")


def plot_strategy_mix(view: RunView) -> Plot | None:
    """Per iteration: strategy shares of the teacher data, the training mix and the student's samples."""
    teacher = view.metrics.teacher.strategy_counts if view.metrics.teacher else {}
    panels = []
    for it in view.iterations:
        sources = [
            teacher,
            it.train.strategy_counts if it.train else {},
            it.student.strategy_counts if it.student else {},
        ]
        if any(sum(counts.values()) for counts in sources[1:]):
            panels.append((it.iteration, sources))
    if not panels:
        return None
    strategies = ordered_strategies(s for _, sources in panels for counts in sources for s in counts)
    figure, axes = grid_figure(len(panels), 4, 2.8, 2.4)
    width = 0.8 / len(SOURCE_LABELS)
    for ax, (number, sources) in zip(axes, panels, strict=True):
        for index, counts in enumerate(sources):
            total = sum(counts.values())
            if not total:
                continue
            xs = [i + (index - 1) * width for i in range(len(strategies))]
            shares = [100 * counts.get(s, 0) / total for s in strategies]
            ax.bar(xs, shares, width, color=SOURCE_COLORS[index], label=SOURCE_LABELS[index])
        ax.set_xticks(range(len(strategies)), strategies)
        style_axes(ax, f"iteration {number}", "", "share (%)")
    shared_legend(figure, axes)
    return finish(figure, "strategy_mix",
                  "Strategy shares of the teacher data, the training mix and the student's samples.")


def plot_series(view: RunView, name: str, values: dict[int, float], ylabel: str,
                caption: str, ylim: tuple[float, float] | None = None) -> Plot | None:
    """A single line over iterations (α, KL)."""
    if not values:
        return None
    figure = new_figure(4.2, 2.6)
    ax = figure.subplots()
    ax.plot(list(values), list(values.values()), marker="o", color=SIKED_COLOR)
    style_axes(ax, ylabel, "iteration", ylabel)
    ax.set_xticks([it.iteration for it in view.iterations])
    if ylim:
        ax.set_ylim(*ylim)
    return finish(figure, name, caption)


def plot_alpha(view: RunView) -> Plot | None:
    values = {it.iteration: it.train.alpha for it in view.iterations
              if it.train and it.train.alpha is not None}
    return plot_series(view, "alpha", values, "α (teacher share)",
                       "α: share of teacher examples in each iteration's training mix.", (0.0, 1.05))


def plot_kl(view: RunView) -> Plot | None:
    """The paper's KL(P_train ‖ P_SM) from free samples, and the same against greedy validation choices."""
    series = {
        "KL(train ‖ free samples)": {it.iteration: it.kl_train_samples for it in view.iterations
                                     if it.kl_train_samples is not None},
        "KL(train ‖ greedy validation choices)": {
            it.iteration: it.kl_train_validation for it in view.iterations if it.kl_train_validation is not None},
    }
    series = {label: values for label, values in series.items() if values}
    if not series:
        return None
    figure = new_figure(4.6, 2.8)
    ax = figure.subplots()
    for index, (label, values) in enumerate(series.items()):
        ax.plot(list(values), list(values.values()), marker="o", label=label,
                color=SIKED_COLOR if index == 0 else METHOD_COLORS[0])
    style_axes(ax, "KL(train ‖ student)", "iteration", "nats")
    ax.set_xticks([it.iteration for it in view.iterations])
    shared_legend(figure, [ax])
    return finish(figure, "kl", "KL divergence of the student's strategy choices from the training mix's "
                  "(add-one smoothed): its free samples after training (the paper's P_SM) and its greedy "
                  "choices on the validation questions.")


def plot_validation_curves(view: RunView) -> Plot | None:
    """Validation accuracy against cumulative optimizer steps, one line per model; stars: chosen."""
    curves = validation_curves(view.metrics)
    if not curves or sum(len(points) for points in curves.values()) < 2:
        return None
    figure = new_figure(5.2, 3.0)
    ax = figure.subplots()
    chosen = {method: b.chosen_step for method, b in view.metrics.baselines.items()}
    if view.best is not None:
        chosen[run_label(view.metrics.run)] = next(
            (p.step for p in curves.get(run_label(view.metrics.run), [])
             if p.model == ModelName(iteration=view.best.iteration).weights),
            None)
    for index, (label, points) in enumerate(curves.items()):
        color = SIKED_COLOR if index == 0 and label == run_label(view.metrics.run) else \
            METHOD_COLORS[index % len(METHOD_COLORS)]
        steps = [p.step for p in points]
        values = [100 * (p.validation or 0.0) for p in points]
        ax.plot(steps, values, marker="o", color=color, label=label)
        best = dict(zip(steps, values, strict=True)).get(chosen.get(label))
        if best is not None:
            ax.plot([chosen[label]], [best], marker="*", markersize=12, linestyle="none", color="gold",
                    markeredgecolor=color)
    style_axes(ax, "Validation accuracy against training steps", "optimizer steps", "accuracy (%)")
    shared_legend(figure, [ax])
    return finish(figure, "validation_curves",
                  "Validation accuracy of every model at its checkpoints (SIKeD: each iteration's end, at its "
                  "cumulative steps); stars: the checkpoint each method reports, chosen on validation.")


def plot_strategy_choice(view: RunView) -> Plot | None:
    """Stacked bars: which strategy the student chose on each evaluation set, per iteration."""
    datasets = [d for d in view.datasets
                if any(d in it.eval and it.eval[d].strategy_distribution for it in view.iterations)]
    if not datasets:
        return None
    strategies = ordered_strategies(
        s for it in view.iterations for result in it.eval.values() for s in result.strategy_distribution
    )
    figure, axes = grid_figure(len(datasets), 3, 3.2, 2.6)
    for ax, name in zip(axes, datasets, strict=True):
        shown = [it for it in view.iterations if name in it.eval and it.eval[name].strategy_distribution]
        xs = [it.iteration for it in shown]
        bottoms = [0.0] * len(shown)
        for strategy in strategies:
            heights = [100 * it.eval[name].strategy_distribution.get(strategy, 0.0) for it in shown]
            ax.bar(xs, heights, 0.6, bottom=bottoms, label=strategy,
                   color=strategy_color(strategy, strategies))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        style_axes(ax, name, "iteration", "share of questions (%)")
        ax.set_xticks([it.iteration for it in view.iterations])
        ax.set_ylim(0, 100)
    shared_legend(figure, axes)
    return finish(figure, "strategy_choice", "The student's strategy choice on each evaluation set.")


