"""Several runs side by side (`siked compare`): accuracy with 95% Wilson intervals, strategy choices,
and, where several runs (seeds) hold the same models, their mean and paired differences."""

from __future__ import annotations

from pathlib import Path

from siked.evaluation import distribution_from_counts, wilson_interval
from siked.metrics import VALIDATION, EvalResult, Metrics, RoutingGroup, TrainStats, load_metrics
from siked.report.document import (
    BEST_MARK,
    MISSING,
    fmt_best_single,
    fmt_gap,
    fmt_num,
    fmt_pct,
    fmt_score,
)
from siked.report.seeds import model_tables, seeds_section
from siked.report.templates import set_templates, templates_section
from siked.report.view import dataset_names, ordered_strategies


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
    best, _ = metrics.best()
    rows, steps = [], 0
    for it in metrics.iterations:
        steps += (it.train.steps or 0) if it.train else 0
        mark = f" {BEST_MARK}" if best is not None and it.iteration == best.iteration else ""
        rows.append((label, f"SIKeD iteration {it.iteration}{mark}", it.train, steps or None, it.eval))
    for method, baseline in metrics.baselines.items():
        steps_used = baseline.train.steps if baseline.train else None
        rows.append((label, f"{method} baseline", baseline.train, steps_used, baseline.eval))
    return rows


def compare_runs(run_dirs: list[Path], reference: str = "combined") -> str:
    """Markdown: accuracy (with 95% intervals) and strategy choices of every iteration and baseline
    of several runs, side by side; over seeds, each model's mean and its paired difference from
    `reference`, and accuracy per template."""
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
    iterations = iteration_rows(loaded)
    routing = routing_rows(loaded)
    runs = [(Path(d), metrics) for d, (_, metrics) in zip(run_dirs, loaded, strict=True)]
    sets = [*([VALIDATION] if VALIDATION in names else []), *(n for n in names if n != VALIDATION)]
    groups, tables = model_tables(runs, sets)
    templates = set_templates(groups, sets)
    extra = [seeds_section(groups, tables, sets, reference, templates), templates_section(groups, tables, sets, templates)]
    return "\n".join(["## Accuracy", "", *accuracy, "", note, "", "## Strategy choices", "", *choices, "",
                      "## Per iteration", "", *iterations, "", *routing, *(block for block in extra if block)])


def iteration_rows(loaded: list[tuple[str, Metrics]]) -> list[str]:
    """α, the student's solved share and the strategy mixes of every iteration (the paper's Figure 2 in
    numbers: KL(train ‖ student) compares the training mix with the student's choices on validation)."""
    rows = ["| run | iteration | α | teacher + student examples | teacher data | training mix | "
            "student samples | questions solved in samples | KL(train ‖ student) | per strategy on "
            "the first test set (chosen: correct/total) |", "|" + "---|" * 10]
    for label, metrics in loaded:
        teacher = fmt_distribution(distribution_from_counts(metrics.teacher.strategy_counts)) if metrics.teacher \
            else MISSING
        tests = [name for name in dataset_names(metrics) if name != VALIDATION]
        for it in metrics.iterations:
            train = it.train or TrainStats()
            student = it.student
            solved = f"{student.solved_questions}/{student.questions}" if student and student.questions else MISSING
            samples = fmt_distribution(distribution_from_counts(student.strategy_counts)) if student else MISSING
            per_strategy = MISSING
            if tests and tests[0] in it.eval:
                result = it.eval[tests[0]]
                per_strategy = " · ".join(f"{name} {score.correct}/{score.total}"
                                          for name, score in sorted(result.by_strategy.items()))
            rows.append(f"| {label} | {it.iteration} | {fmt_num(train.alpha)} | {fmt_num(train.teacher_count)} + "
                        f"{fmt_num(train.student_count)} | {teacher} | "
                        f"{fmt_distribution(distribution_from_counts(train.strategy_counts))} | {samples} | {solved} | "
                        f"{fmt_num(it.kl_train_samples, 3)} | {per_strategy or MISSING} |")
    return rows


def routing_cells(result: RoutingGroup) -> str:
    forced = " · ".join(f"{s} {fmt_pct(result.forced_accuracy[s])}" for s in ordered_strategies(result.forced_accuracy))
    return f"{forced or MISSING} | {fmt_best_single(result)} | {fmt_pct(result.oracle_accuracy)} | {fmt_gap(result)} |"


def routing_rows(loaded: list[tuple[str, Metrics]]) -> list[str]:
    """Forced-strategy accuracy, the best single strategy, the oracle bound and the gap between them, of
    each run's chosen iteration (`loop.routing`), per set and, for sets of several templates, per template."""
    rows = []
    for label, metrics in loaded:
        best, _ = metrics.best()
        iteration = best.iteration if best else MISSING
        for name, result in metrics.routing.items():
            actual = best.eval.get(name) if best else None
            rows.append(f"| {label} | {iteration} | {name} | {fmt_score(actual)} | {routing_cells(result)}")
            if len(result.by_template) > 1:
                rows += [f"| {label} | {iteration} | {name} · {template} (n={group.questions}) | {MISSING} | "
                         f"{routing_cells(group)}" for template, group in result.by_template.items()]
    if not rows:
        return []
    return ["## Routing", "", "The chosen iteration decoding every question with each strategy forced; oracle: the "
            "best strategy per question (an upper bound for the student's choice); oracle gap: oracle minus the "
            "best single strategy, in points (what choosing a strategy per question could add at most; 0: "
            "nothing). Sets of several templates get a row per template.", "",
            "| run | iteration | dataset | own choice | forced | best single | oracle | oracle gap (points) |",
            "|" + "---|" * 8, *rows, ""]
