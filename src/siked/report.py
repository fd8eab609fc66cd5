"""The run report: `report.md` and a self-contained `report.html` from a run's metrics.json and config.yaml.

Both documents are rendered from one list of sections, so they always say the same thing. Plots are drawn
on matplotlib's Agg canvas (no display, no global pyplot state), saved as PNG files under RUN_DIR/plots/ for
the Markdown and embedded as base64 data URIs in the HTML, which therefore needs no other file.

metrics.json may be partial (a run still in progress): whatever is there is rendered, and a "Missing"
section lists what is not there yet.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, ValidationError

from siked.errors import SikedError, one_line
from siked.evaluation import distribution_from_counts
from siked.io import atomic_path

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
PLOTS_DIR = "plots"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
VALIDATION = "validation"
"""The evaluation set the loop selects the best iteration on; every other set is test only."""
STRATEGY_ORDER = ("cot", "l2m", "pot")
STATUS_ORDER = ("ok", "no_answer", "invalid", "timeout", "error")
DPI = 100
BEST_MARK = "★"
MISSING = "—"
REFERENCE_NOTICE = (
    "Teacher data came from the datasets' reference solutions, not an LLM: "
    "no teacher model was queried in this run."
)


class ReportError(SikedError, ValueError):
    """A run directory whose metrics cannot be read; the message names the file (and the field)."""


# --------------------------------------------------------------------------------------------------------
# metrics.json, as the reader sees it. Every key but `iterations` is optional; unknown keys are ignored
# so that a report can still be drawn from metrics written by a newer loop.


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Score(Record):
    total: int = 0
    correct: int = 0
    accuracy: float | None = None

    @property
    def rate(self) -> float | None:
        """The recorded accuracy, else correct / total."""
        if self.accuracy is not None:
            return self.accuracy
        return self.correct / self.total if self.total else None


class EvalResult(Score):
    """The student's results on one evaluation set."""

    by_strategy: dict[str, Score] = {}
    """Results on the questions where the student chose each strategy."""
    strategy_distribution: dict[str, float] = {}
    """Share of questions on which the student chose each strategy (`none`: no readable tag)."""
    by_status: dict[str, int] = {}


class TrainStats(Record):
    examples: int | None = None
    teacher_count: int | None = None
    student_count: int | None = None
    alpha: float | None = None
    """Share of teacher examples in the training mix."""
    strategy_counts: dict[str, int] = {}
    train_loss: float | None = None
    steps: int | None = None
    tokens_per_s: float | None = None


class StudentStats(Record):
    """The student's own samples on the training questions after an iteration."""

    strategy_counts: dict[str, int] = {}
    samples: int | None = None
    correct: int | None = None
    solved_questions: int | None = None
    questions: int | None = None


class Iteration(Record):
    iteration: int
    train: TrainStats | None = None
    eval: dict[str, EvalResult] = {}
    student: StudentStats | None = None
    kl_train_student: float | None = None


class Baseline(Record):
    train: TrainStats | None = None
    eval: dict[str, EvalResult] = {}


class TeacherStrategyStats(Record):
    attempted: int | None = None
    correct: int | None = None
    kept: int | None = None
    solve_rate: float | None = None


class TeacherStats(Record):
    strategy_counts: dict[str, int] = {}
    by_strategy: dict[str, TeacherStrategyStats] = {}
    oracle_coverage: float | None = None
    """Share of training questions solved by at least one strategy."""


class RoutingResult(Record):
    questions: int | None = None
    oracle_accuracy: float | None = None
    """Accuracy if the best strategy were picked for every question (an upper bound)."""
    solved_by: dict[str, int] = {}
    only_by: dict[str, int] = {}
    forced_accuracy: dict[str, float] = {}


class RunInfo(Record):
    out: str | None = None
    teacher_backend: str | None = None
    reference_solutions: bool | None = None
    """True: the teacher data are the datasets' own worked solutions, not an LLM's."""
    student_model: str | None = None
    mixing: dict[str, Any] = {}
    started: str | None = None
    finished: str | None = None
    wall_s: float | None = None
    baselines: list[str] | None = None
    """Baselines the run was configured to train (None: not recorded, as in older runs)."""
    routing: bool | None = None
    """Whether the run was configured to run the routing analysis (None: not recorded)."""
    generation_backend: str | None = None
    """The backends the student's sampling and evaluation ran on, and why (None: not recorded)."""


class Metrics(Record):
    run: RunInfo = RunInfo()
    teacher: TeacherStats | None = None
    iterations: list[Iteration]
    best_iteration: int | None = None
    stopped: str | None = None
    baselines: dict[str, Baseline] = {}
    routing: dict[str, RoutingResult] = {}


def load_metrics(run_dir: Path) -> Metrics:
    """Read and check RUN_DIR/metrics.json; every problem is a ReportError naming the file."""
    if not run_dir.exists():
        raise ReportError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise ReportError(f"run directory {run_dir} is not a directory")
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise ReportError(f"{path} does not exist (the run has not written any metrics yet)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} cannot be read: {one_line(exc)}") from None
    try:
        metrics = Metrics.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"  {'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ReportError("\n".join([f"{path} does not match the metrics schema:", *problems])) from None
    metrics.iterations.sort(key=lambda it: it.iteration)
    return metrics


def read_config(run_dir: Path) -> str | None:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} cannot be read: {one_line(exc)}") from None


# --------------------------------------------------------------------------------------------------------
# What one run says, with the derived facts every section needs.


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
        return f"SIKeD (iteration {self.best.iteration})" if self.best else "SIKeD"


def make_view(run_dir: Path, metrics: Metrics, config_text: str | None) -> RunView:
    best, recorded = choose_best(metrics)
    return RunView(run_dir, metrics, config_text, best, recorded, dataset_names(metrics))


def choose_best(metrics: Metrics) -> tuple[Iteration | None, bool]:
    """The recorded best iteration, else the one with the highest validation accuracy (earliest on ties)."""
    by_number = {it.iteration: it for it in metrics.iterations}
    if metrics.best_iteration in by_number:
        return by_number[metrics.best_iteration], True
    scored = [
        (it.eval[VALIDATION].rate, -it.iteration, it)
        for it in metrics.iterations
        if VALIDATION in it.eval and it.eval[VALIDATION].rate is not None
    ]
    if not scored:
        return None, False
    return max(scored, key=lambda item: item[:2])[2], False


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
    others = sorted(seen - set(STRATEGY_ORDER) - {"none"})
    return known + others + (["none"] if "none" in seen else [])


def ordered_statuses(names: Iterable[str]) -> list[str]:
    seen = set(names)
    return [s for s in STATUS_ORDER if s in seen] + sorted(seen - set(STATUS_ORDER))


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


Block = str | Table | Plot | Notice | Bullets | Details


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
    if not mixing:
        return MISSING
    mode = mixing.get("mode", MISSING)
    rest = ", ".join(f"{key}: {value}" for key, value in mixing.items() if key != "mode")
    return f"{mode} ({rest})" if rest else str(mode)


def iteration_list(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


# --------------------------------------------------------------------------------------------------------
# Plots.

STRATEGY_COLORS = {"cot": "#4C72B0", "l2m": "#DD8452", "pot": "#55A868", "none": "#A0A0A0"}
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
                    color="gold", markeredgecolor=SIKED_COLOR, label="best (chosen on validation)")
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
    values = {it.iteration: it.kl_train_student for it in view.iterations
              if it.kl_train_student is not None}
    return plot_series(view, "kl", values, "KL(train ‖ student)",
                       "KL divergence between the training mix's strategy distribution and the "
                       "student's (its greedy choices on the validation questions).")


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


# --------------------------------------------------------------------------------------------------------
# Sections.


def teacher_data_origin(reference_solutions: bool | None) -> str:
    if reference_solutions is None:
        return MISSING
    return "reference solutions (not an LLM)" if reference_solutions else "generated by the teacher LLM"


def header_blocks(view: RunView) -> list[Block]:
    run = view.metrics.run
    blocks: list[Block] = []
    if run.reference_solutions:
        blocks.append(Notice(REFERENCE_NOTICE))
    if view.best is None:
        best = MISSING
    else:
        best = f"{view.best.iteration} (chosen on validation accuracy only)"
        if not view.best_recorded:
            best = f"{view.best.iteration} (not recorded by the run; highest validation accuracy so far)"
    status = run.finished or "not finished (in progress or interrupted)"
    rows = [
        ["Run directory", str(view.run_dir)],
        ["Teacher backend", run.teacher_backend or MISSING],
        ["Teacher data", teacher_data_origin(run.reference_solutions)],
        ["Student model", run.student_model or MISSING],
        ["Generation backend", run.generation_backend or MISSING],
        ["Mixing", fmt_mixing(run.mixing)],
        ["Started", run.started or MISSING],
        ["Finished", status],
        ["Wall time", fmt_duration(run.wall_s)],
        ["Stopped because", view.metrics.stopped or MISSING],
        ["Iterations recorded", str(len(view.iterations))],
        ["Best iteration", best],
    ]
    blocks.append(Table(["Field", "Value"], rows, text_columns=2))
    return blocks


def missing_items(view: RunView) -> list[str]:
    """What a complete run would have that this metrics.json does not (yet)."""
    metrics = view.metrics
    items = []
    if not view.iterations:
        items.append("iterations: none recorded yet")

    def without(label: str, has: Any) -> None:
        numbers = [it.iteration for it in view.iterations if not has(it)]
        if numbers:
            items.append(f"{label} for iteration(s) {iteration_list(numbers)}")

    without("evaluation results", lambda it: it.eval)
    without("training statistics", lambda it: it.train)
    last = view.iterations[-1].iteration if view.iterations else None
    # The iteration the loop stopped after samples nothing: nothing trains on its samples.
    without("student samples", lambda it: it.student or (metrics.stopped and it.iteration == last))
    if view.iterations and not any(VALIDATION in it.eval for it in view.iterations):
        items.append("validation results (needed to choose the best iteration)")
    if metrics.best_iteration is None and view.best is not None:
        items.append("best_iteration (the run has not chosen one; marked here by validation accuracy)")
    elif metrics.best_iteration is not None and not view.best_recorded:
        items.append(f"iteration {metrics.best_iteration}, named as the best one, has no record")
    if view.iterations and all(it.kl_train_student is None for it in view.iterations):
        items.append("KL(train ‖ student)")
    if metrics.teacher is None:
        items.append("teacher statistics")
    planned = metrics.run.baselines
    if planned is None and not metrics.baselines:
        items.append("baselines (not run, or not finished yet)")
    elif planned and [m for m in planned if m not in metrics.baselines]:
        items.append(f"baselines {', '.join(m for m in planned if m not in metrics.baselines)} (not finished yet)")
    if not metrics.routing and metrics.run.routing is not False:
        items.append("routing analysis (oracle best strategy per question)")
    if metrics.run.finished is None:
        items.append("finish time (the run is in progress or was interrupted)")
    if view.config_text is None:
        items.append(f"{CONFIG_FILE} (the resolved run config)")
    return items


def accuracy_section(view: RunView) -> Section:
    if not view.iterations:
        return Section("Accuracy per iteration", ["No iterations recorded yet."])
    headers = ["Iteration", *view.datasets]
    rows = []
    for it in view.iterations:
        label = str(it.iteration)
        if view.best is not None and it.iteration == view.best.iteration:
            label += f" {BEST_MARK}"
        cells = [fmt_score(it.eval.get(d)) if it.eval else "not evaluated" for d in view.datasets]
        rows.append([label, *cells])
    if not view.datasets:
        return Section("Accuracy per iteration", ["No evaluation results yet."])
    return Section("Accuracy per iteration", [
        f"{BEST_MARK} marks the best iteration. It is chosen on the `{VALIDATION}` split only; the other "
        "evaluation sets are never used for selection, so their numbers are unbiased test results.",
        Table(headers, rows),
        plot_accuracy(view),
    ])


def baselines_section(view: RunView) -> Section:
    baselines = view.metrics.baselines
    if not baselines:
        return Section("Baselines vs SIKeD", ["No baselines in metrics.json (not run, or not finished yet)."])
    methods = [(f"baseline: {name}", b.eval, b.train) for name, b in baselines.items()]
    if view.best is not None:
        methods.append((view.best_label, view.best.eval, view.best.train))
    rows = [
        [label, fmt_num(train.examples if train else None), *(fmt_score(results.get(d)) for d in view.datasets)]
        for label, results, train in methods
    ]
    blocks: list[Block] = [
        "Each baseline is trained once on teacher data (`combined`: all strategies; otherwise one strategy). "
        "SIKeD is shown at its best iteration.",
        Table(["Method", "Train examples", *view.datasets], rows),
        plot_baselines(view),
    ]
    return Section("Baselines vs SIKeD", blocks)


def training_section(view: RunView) -> Section:
    rows = []
    for it in view.iterations:
        train = it.train or TrainStats()
        rows.append([
            str(it.iteration), fmt_num(train.examples), fmt_num(train.teacher_count),
            fmt_num(train.student_count), fmt_num(train.alpha), fmt_num(train.train_loss, 3),
            fmt_num(train.steps), fmt_num(train.tokens_per_s, 1), fmt_num(it.kl_train_student, 3),
        ])
    headers = ["Iteration", "Examples", "Teacher", "Student", "α", "Train loss", "Steps", "Tokens/s",
               "KL(train ‖ student)"]
    blocks: list[Block] = [
        "α is the share of teacher examples in the training mix; it falls as the student's own correct "
        "solutions replace teacher data.",
        Table(headers, rows) if rows else "No iterations recorded yet.",
        plot_alpha(view),
        plot_kl(view),
    ]
    return Section("Training data per iteration", blocks)


def strategies_section(view: RunView) -> Section:
    rows = []
    for it in view.iterations:
        student = it.student
        if student is None:
            continue
        rows.append([
            str(it.iteration), fmt_num(student.samples), fmt_ratio(student.correct, student.samples),
            fmt_ratio(student.solved_questions, student.questions),
        ])
    blocks: list[Block] = [plot_strategy_mix(view)]
    if rows:
        blocks.append("The student's own samples on the training questions after each iteration:")
        blocks.append(Table(["Iteration", "Samples", "Correct", "Questions solved"], rows))
    blocks.append(plot_strategy_choice(view))
    return Section("Strategies", blocks)


def per_strategy_section(view: RunView) -> Section:
    title = "Per-strategy accuracy"
    if view.best is None or not view.best.eval:
        return Section(title, ["No evaluated best iteration yet."])
    title += f" (iteration {view.best.iteration})"
    rows = []
    for name in view.datasets:
        result = view.best.eval.get(name)
        if result is None:
            continue
        for strategy in ordered_strategies([*result.by_strategy, *result.strategy_distribution]):
            score = result.by_strategy.get(strategy)
            share = result.strategy_distribution.get(strategy)
            rows.append([
                name, strategy, fmt_pct(share),
                f"{score.correct}/{score.total}" if score else MISSING,
                fmt_pct(score.rate if score else None),
            ])
    statuses = ordered_statuses(s for result in view.best.eval.values() for s in result.by_status)
    status_rows = [
        [name, *(str(view.best.eval[name].by_status.get(s, 0)) for s in statuses)]
        for name in view.datasets if name in view.best.eval and view.best.eval[name].by_status
    ]
    blocks: list[Block] = [
        "Accuracy of the questions on which the student chose each strategy, and how often it chose it.",
        Table(["Dataset", "Strategy", "Chosen", "Correct", "Accuracy"], rows, text_columns=2) if rows
        else "No per-strategy results recorded.",
    ]
    if status_rows:
        blocks.append("Answer status (ok: an answer was extracted; the rest: why not):")
        blocks.append(Table(["Dataset", *statuses], status_rows))
    return Section(title, blocks)


def teacher_section(view: RunView) -> Section | None:
    teacher = view.metrics.teacher
    if teacher is None:
        return None
    blocks: list[Block] = []
    if view.metrics.run.reference_solutions:
        blocks.append(Notice(REFERENCE_NOTICE))
    strategies = ordered_strategies([*teacher.by_strategy, *teacher.strategy_counts])
    rows = []
    for strategy in strategies:
        stats = teacher.by_strategy.get(strategy, TeacherStrategyStats())
        rows.append([
            strategy, fmt_num(stats.attempted), fmt_num(stats.correct), fmt_num(stats.kept),
            fmt_pct(stats.solve_rate), fmt_num(teacher.strategy_counts.get(strategy)),
        ])
    if rows:
        blocks.append(Table(["Strategy", "Attempted", "Correct", "Kept", "Solve rate", "In teacher data"], rows))
    if teacher.oracle_coverage is not None:
        blocks.append(
            f"Training questions solved by at least one strategy: {fmt_pct(teacher.oracle_coverage)}."
        )
    return Section("Teacher data", blocks)


def routing_section(view: RunView) -> Section | None:
    routing = view.metrics.routing
    if not routing:
        return None
    strategies = ordered_strategies(
        s for result in routing.values() for s in [*result.forced_accuracy, *result.solved_by]
    )
    accuracy_rows = []
    coverage_rows = []
    for name, result in routing.items():
        actual = view.best.eval.get(name) if view.best else None
        accuracy_rows.append([
            name, fmt_num(result.questions), fmt_score(actual),
            *(fmt_pct(result.forced_accuracy.get(s)) for s in strategies),
            fmt_pct(result.oracle_accuracy),
        ])
        coverage_rows.append([
            name,
            *(f"{result.solved_by.get(s, 0)} ({result.only_by.get(s, 0)} only)" for s in strategies),
        ])
    blocks: list[Block] = [
        "Oracle: the best strategy picked per question (an upper bound for strategy choice); forced: one "
        "strategy imposed on every question; actual: the student's own choice at its best iteration.",
        Table(["Dataset", "Questions", f"Actual: {view.best_label}",
               *(f"Forced {s}" for s in strategies), "Oracle"], accuracy_rows),
        "Questions solved with each strategy (and by that strategy only):",
        Table(["Dataset", *strategies], coverage_rows),
    ]
    return Section("Strategy routing", blocks)


def config_section(view: RunView) -> Section:
    if view.config_text is None:
        return Section("Config", [f"{CONFIG_FILE} is missing from the run directory."])
    return Section("Config", [Details(f"Resolved run config ({CONFIG_FILE})", view.config_text)])


def build_sections(view: RunView) -> list[Section]:
    sections = [Section("Run", header_blocks(view))]
    missing = missing_items(view)
    if missing:
        sections.append(Section("Missing", ["Not in metrics.json yet (or not part of this run):",
                                            Bullets(missing)]))
    optional = [teacher_section(view), routing_section(view)]
    sections += [
        accuracy_section(view),
        baselines_section(view),
        per_strategy_section(view),
        training_section(view),
        strategies_section(view),
        *(section for section in optional if section is not None),
        config_section(view),
    ]
    return sections


def report_title(view: RunView) -> str:
    return f"SIKeD run report: {view.metrics.run.out or view.run_dir.name}"


# --------------------------------------------------------------------------------------------------------
# Markdown.


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_alignment(table: Table) -> list[str]:
    return ["---" if i < table.text_columns else "--:" for i in range(len(table.headers))]


def md_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(md_cell(h) for h in table.headers) + " |",
        "|" + "|".join(md_alignment(table)) + "|",
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def md_fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def md_block(block: Block) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, Table):
        return md_table(block)
    if isinstance(block, Plot):
        return f"![{block.caption}]({PLOTS_DIR}/{block.name}.png)"
    if isinstance(block, Notice):
        return f"> **Note:** {block.text}"
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    fence = md_fence(block.text)
    body = block.text.rstrip("\n")
    return f"<details>\n<summary>{html.escape(block.summary)}</summary>\n\n{fence}yaml\n{body}\n{fence}\n\n</details>"


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += [md_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------------------
# HTML.

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1100px; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; }
th.text, td.text { text-align: left; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: .85rem; color: #57606a; }
.notice { background: #fff8c5; border-left: 4px solid #d4a72c; padding: .6rem .9rem; font-weight: 600; }
details { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem .8rem; }
summary { cursor: pointer; font-weight: 600; }
pre { overflow-x: auto; font-size: .85rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""


def esc(text: str) -> str:
    """Escape text content; `code` spans written with backticks become <code>."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def html_cells(tag: str, cells: list[str], text_columns: int) -> str:
    return "".join(
        f'<{tag} class="text">{esc(c)}</{tag}>' if i < text_columns else f"<{tag}>{esc(c)}</{tag}>"
        for i, c in enumerate(cells)
    )


def html_table(table: Table) -> str:
    head = html_cells("th", table.headers, table.text_columns)
    body = "".join(f"<tr>{html_cells('td', row, table.text_columns)}</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_block(block: Block) -> str:
    if isinstance(block, str):
        return f"<p>{esc(block)}</p>"
    if isinstance(block, Table):
        return html_table(block)
    if isinstance(block, Plot):
        data = base64.b64encode(block.png).decode("ascii")
        alt = html.escape(block.caption, quote=True)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>")
    if isinstance(block, Notice):
        return f'<p class="notice">{esc(block.text)}</p>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>"
    return (f"<details><summary>{esc(block.summary)}</summary>"
            f"<pre><code>{html.escape(block.text, quote=False)}</code></pre></details>")


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        parts += [html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file so a reader never sees half a report."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Write RUN_DIR/report.md (plots under RUN_DIR/plots/) and a self-contained RUN_DIR/report.html."""
    run_dir = Path(run_dir)
    metrics = load_metrics(run_dir)
    view = make_view(run_dir, metrics, read_config(run_dir))
    sections = build_sections(view)
    title = report_title(view)
    plots_dir = run_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    for section in sections:
        for block in section.blocks:
            if isinstance(block, Plot):
                write_atomic(plots_dir / f"{block.name}.png", block.png)
    md_path, html_path = run_dir / REPORT_MD, run_dir / REPORT_HTML
    write_atomic(md_path, render_markdown(title, sections).encode("utf-8"))
    write_atomic(html_path, render_html(title, sections).encode("utf-8"))
    return md_path, html_path


# --------------------------------------------------------------------------------------------------------
# Several runs side by side (`siked compare`).


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at small n and at 0 or n)."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def fmt_score_interval(result: EvalResult | None) -> str:
    """`5.0% (2/40) [1.4–16.5]`: accuracy, counts and the 95% Wilson interval in percent."""
    if result is None or not result.total:
        return MISSING
    low, high = wilson_interval(result.correct, result.total)
    return f"{fmt_score(result)} [{100 * low:.1f}–{100 * high:.1f}]"


def fmt_distribution(shares: dict[str, float]) -> str:
    if not shares:
        return MISSING
    return " · ".join(f"{name} {fmt_pct(shares[name])}" for name in ordered_strategies(shares))


def _compare_rows(label: str, metrics: Metrics) -> list[tuple[str, str, TrainStats | None, int | None,
                                                              dict[str, EvalResult]]]:
    """(run, model, train stats, cumulative steps, eval results) for each iteration and baseline."""
    best, _ = choose_best(metrics)
    rows, steps = [], 0
    for it in metrics.iterations:
        steps += (it.train.steps or 0) if it.train else 0
        mark = f" {BEST_MARK}" if best is not None and it.iteration == best.iteration else ""
        rows.append((label, f"SIKeD iteration {it.iteration}{mark}", it.train, steps or None, it.eval))
    for method, baseline in metrics.baselines.items():
        steps_used = baseline.train.steps if baseline.train else None
        rows.append((label, f"{method} baseline", baseline.train, steps_used, baseline.eval))
    return rows


def compare_runs(run_dirs: list[Path]) -> str:
    """Markdown: accuracy (with 95% intervals) and strategy choices of every iteration and baseline
    of several runs, side by side."""
    names_only = [Path(d).name for d in run_dirs]
    unique = len(set(names_only)) == len(names_only) and all(names_only)
    loaded = [(name if unique else str(d), load_metrics(Path(d))) for name, d in zip(names_only, run_dirs, strict=True)]
    datasets: dict[str, None] = {}
    for _, metrics in loaded:
        datasets.update(dict.fromkeys(dataset_names(metrics)))
    names = list(datasets)
    rows = [row for label, metrics in loaded for row in _compare_rows(label, metrics)]

    accuracy = ["| run | model | training steps (cumulative) | examples | α | " + " | ".join(names) + " |",
                "|" + "---|" * (5 + len(names))]
    choices = ["| run | model | training mix | " + " | ".join(f"choices on {n}" for n in names) + " |",
               "|" + "---|" * (3 + len(names))]
    for label, model, train, steps, results in rows:
        examples = train.examples if train and train.examples is not None else None
        if examples is None and train and train.teacher_count is not None:
            examples = train.teacher_count + (train.student_count or 0)
        alpha = fmt_num(train.alpha) if train else MISSING
        accuracy.append(f"| {label} | {model} | {fmt_num(steps)} | {fmt_num(examples)} | {alpha} | "
                        + " | ".join(fmt_score_interval(results.get(n)) for n in names) + " |")
        mix = distribution_from_counts(train.strategy_counts) if train else {}
        choices.append(f"| {label} | {model} | {fmt_distribution(mix)} | "
                       + " | ".join(fmt_distribution(results[n].strategy_distribution) if n in results else MISSING
                                    for n in names) + " |")
    note = (f"{BEST_MARK}: the iteration chosen on validation. Accuracy cells: share correct, "
            "(correct/total), [95% Wilson interval].")
    return "\n".join(["## Accuracy", "", *accuracy, "", note, "", "## Strategy choices", "", *choices, ""])
