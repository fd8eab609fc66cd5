"""Which strategy the student chose, per template and iteration, against what the routing oracle
would pick: the paper's mechanism (each question solved with the strategy that suits it), read from
the run's stored outputs. Nothing is generated again.

For one set the routing pass covered and that spans several templates (the first held-out one, else
validation): per template, each iteration's shares of the strategies the student chose
(`<model folder>/eval/<set>.jsonl`), the strategy the oracle's table names best on that template
(each strategy forced, the chosen model), and for the chosen model the share of questions where its
own pick is one of the forced strategies that are right (over the questions some strategy solves).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from siked.evaluation import natural_key
from siked.metrics import VALIDATION, RoutingGroup, RoutingResult
from siked.records import GradedSolution
from siked.report.document import MISSING, Block, Plot, Section, Table, fmt_pct
from siked.report.failures import read_outputs
from siked.report.plots import finish, grid_figure, shared_legend, strategy_color, style_axes
from siked.report.templates import question_templates
from siked.report.view import RunView, ordered_strategies

TITLE = "Strategy choice per template"
SHOWN_SHARE = 0.05
"""A cell lists the strategies chosen for at least this share of a template's questions."""


@dataclass(frozen=True)
class TemplateChoice:
    template: str
    questions: int
    shares: dict[int, dict[str, float]]
    """Iteration -> strategy -> share of the template's questions it was chosen for."""
    oracle: str | None
    """The best forced strategy on this template (the routing pass, the chosen model); ties as `cot = pot`."""
    oracle_accuracy: float | None
    right_pick: float | None
    """The chosen model: share of the questions some forced strategy solves where it picked one of those."""


def routed_set(view: RunView) -> str | None:
    """The set this section reads: the first held-out set the routing pass covered with several
    templates, else validation if it qualifies."""
    routed = [name for name, result in view.metrics.routing.items() if len(result.by_template) > 1]
    return next((name for name in routed if name != VALIDATION), routed[0] if routed else None)


def choice_shares(rows: list[GradedSolution], templates: dict[str, str]) -> dict[str, dict[str, float]]:
    """Template -> strategy -> share of its questions the model chose it for."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts[templates.get(row.problem_id, MISSING)][row.verdict.strategy] += 1
    return {t: {s: n / sum(c.values()) for s, n in c.items()} for t, c in counts.items()}


def right_picks(rows: list[GradedSolution], result: RoutingResult, templates: dict[str, str]) -> dict[str, float]:
    """Template -> share of its questions some forced strategy solves where the model picked one of them."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        right = result.per_question.get(row.problem_id)
        if right:
            hits[templates.get(row.problem_id, MISSING)].append(row.verdict.strategy in right)
    return {t: sum(h) / len(h) for t, h in hits.items()}


def best_strategies(group: RoutingGroup) -> str | None:
    """The strategies tied at the best forced accuracy, `cot = pot` (None: none recorded)."""
    best = group.best_single_accuracy
    tied = [s for s in ordered_strategies(group.forced_accuracy) if group.forced_accuracy[s] == best]
    return " = ".join(tied) or None


def template_choices(view: RunView, dataset: str) -> tuple[list[TemplateChoice], list[str]]:
    """The rows of the section, and a note per output file that could not be read."""
    templates = question_templates([view.run_dir], dataset)
    result = view.metrics.routing[dataset]
    shares: dict[int, dict[str, dict[str, float]]] = {}
    notes, best_rows = [], None
    for it in view.iterations:
        rows, where = read_outputs(view, it.iteration, dataset)
        if rows is None:
            notes.append(where)
            continue
        shares[it.iteration] = choice_shares(rows, templates)
        if view.best is not None and it.iteration == view.best.iteration:
            best_rows = rows
    picks = right_picks(best_rows, result, templates) if best_rows is not None else {}
    choices = []
    for template in sorted(result.by_template, key=natural_key):
        group = result.by_template[template]
        choices.append(TemplateChoice(
            template=template, questions=group.questions or 0,
            shares={k: by_template.get(template, {}) for k, by_template in shares.items()},
            oracle=best_strategies(group) or group.best_single_strategy, oracle_accuracy=group.best_single_accuracy,
            right_pick=picks.get(template)))
    return choices, notes


def fmt_shares(shares: dict[str, float]) -> str:
    shown = sorted(((s, v) for s, v in shares.items() if v >= SHOWN_SHARE), key=lambda item: -item[1])
    return " · ".join(f"{s} {v:.0%}" for s, v in shown) or MISSING


def fmt_oracle(choice: TemplateChoice) -> str:
    if not choice.oracle or not choice.oracle_accuracy:
        return "none solves any"
    return f"{choice.oracle} ({fmt_pct(choice.oracle_accuracy)})"


def choices_section(view: RunView) -> Section | None:
    dataset = routed_set(view)
    if dataset is None:
        return None
    choices, notes = template_choices(view, dataset)
    iterations = sorted({k for choice in choices for k in choice.shares})
    best = view.best.iteration if view.best else None
    rows = [[c.template, str(c.questions), *(fmt_shares(c.shares.get(k, {})) for k in iterations),
             fmt_oracle(c), fmt_pct(c.right_pick)]
            for c in choices]
    headers = ["Template", "Questions", *(f"Iteration {k}" + (" ★" if k == best else "") for k in iterations),
               "Oracle's pick (forced accuracy)", "★ picks a right strategy"]
    blocks: list[Block] = [
        f"On `{dataset}`, per template: the strategies the student chose at each iteration (shares of the "
        f"template's questions, those of at least {SHOWN_SHARE:.0%}); the strategy that is best on the template "
        "when each is forced on the chosen model (★); and how often ★'s own pick is one of the forced "
        "strategies that are right, over the questions some strategy solves.",
        Table(headers, rows, text_columns=2),
    ]
    blocks += [f"Not shown: {note}." for note in notes]
    if iterations and choices:
        blocks.append(plot_template_choices(choices, iterations, dataset))
    return Section(TITLE, blocks)


def plot_template_choices(choices: list[TemplateChoice], iterations: list[int], dataset: str) -> Plot:
    """One panel per template: the strategy shares per iteration, stacked; the oracle's pick in the title."""
    strategies = ordered_strategies(s for c in choices for shares in c.shares.values() for s in shares)
    figure, axes = grid_figure(len(choices), 4, 2.6, 2.3)
    for ax, choice in zip(axes, choices, strict=True):
        bottoms = [0.0] * len(iterations)
        for strategy in strategies:
            heights = [100 * choice.shares.get(k, {}).get(strategy, 0.0) for k in iterations]
            ax.bar(iterations, heights, 0.6, bottom=bottoms, label=strategy,
                   color=strategy_color(strategy, strategies))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        oracle = f"oracle: {choice.oracle}" if choice.oracle and choice.oracle_accuracy else "none solves any"
        style_axes(ax, f"{choice.template} ({oracle})", "iteration", "chosen (%)")
        ax.set_xticks(iterations)
        ax.set_ylim(0, 100)
    shared_legend(figure, axes)
    return finish(figure, "template_choice",
                  f"The student's strategy choice per template and iteration on `{dataset}`; each panel names "
                  "the strategy that is best on that template when each is forced (the chosen model).")
