"""The primary comparison as numbers: one model's template-averaged paired difference from a reference on
one evaluation set, with its seed-level 95% interval, read straight from run directories.

`siked compare` prints this number in its "Difference from <reference>" table (the set's
"template-averaged" column); a script that rebuilds a results table calls this instead of parsing that
Markdown:

    from siked.report.primary import primary_comparison

    result = primary_comparison(run_dirs, "SIKeD adaptive (chosen)", "combined", "gsm_symbolic:test")
    print(f"{100 * result.estimate:+.1f} [{100 * result.low:+.1f}, {100 * result.high:+.1f}] "
          f"over {result.seeds} seeds ({result.repeats} repeat runs)")

`method` and `reference` are model labels as `siked compare` writes them (`SIKeD <line> <mixing> (chosen)` for the
iteration validation chose, `SIKeD <line> <mixing> iteration <k>`, or a baseline's method such as `combined`);
`dataset` is the evaluation set's name (`validation`, `gsm_symbolic:test`, ...). The numbers are those of
the table, as fractions (multiply by 100 for points): per seed both models were run with (runs sharing a
seed are repeats, averaged per question within it), each template's mean of the per-question differences
(method minus reference) on the questions both answered, then the mean over templates, then over seeds.
Two intervals: `low`/`high` is the hierarchical bootstrap's (`siked.report.bootstrap`): seeds drawn with
replacement, then questions within each template of each drawn seed; with one seed it covers the questions
only. `t_low`/`t_high` is the paired t-interval over seeds: each seed's template-averaged difference
(`per_seed`), mean ± t(0.975, n − 1) · sd / √n, which with few seeds is wider and more honest than a
bootstrap over them (None below two seeds).

Anything that would leave the number undefined is a ValueError saying what: a label no run holds, a model
without evaluation files for the set, no seed both were run with, or a set whose questions do not come
from several templates (its template-averaged difference would just be the pooled one).

Two options serve an experiment's secondary comparisons: `templates` restricts both to the questions of
some templates (a pool, such as the templates whose teacher programs are complete), and `reference_runs`
reads the reference from other runs than the method (two runs whose models carry the same label, such
as a combined baseline inside the SIKeD runs and a separate longer combined run). `model_accuracy` gives
one model's template-averaged accuracy with the same two intervals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from siked.metrics import load_metrics
from siked.report.bootstrap import hierarchical_interval, seed_t_interval, stratified_mean
from siked.report.seeds import (
    ModelRuns,
    SeedKey,
    SeedTable,
    difference_strata,
    model_tables,
    paired_difference,
)
from siked.report.templates import set_templates


@dataclass(frozen=True, kw_only=True)
class SeedFigures:
    """A template-averaged figure on `dataset` over seeds, as fractions: `estimate` with the hierarchical
    bootstrap's 95% interval (`low`, `high`) and the t-interval over seeds (`t_low`, `t_high`; None below
    two seeds); `templates`, `questions`: how many the questions span."""

    dataset: str
    estimate: float
    low: float
    high: float
    seeds: int
    templates: int
    questions: int
    per_seed: tuple[float, ...] = ()
    """Each seed's template-averaged figure, in the order of `seed_keys`."""
    t_low: float | None = None
    t_high: float | None = None
    seed_keys: tuple[SeedKey, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PrimaryComparison(SeedFigures):
    """`method` minus `reference`; `seeds`: the seeds both were run with; `repeats`: runs of those seeds
    beyond the first of each, both models together (0: one run per seed and model)."""

    method: str
    reference: str
    repeats: int


@dataclass(frozen=True, kw_only=True)
class ModelAccuracy(SeedFigures):
    """One model's template-averaged accuracy."""

    label: str


def _model_table(run_dirs: Sequence[Path | str], label: str, dataset: str
                 ) -> tuple[ModelRuns, SeedTable, dict[str, str]]:
    """`label`'s group and seed table on `dataset` over `run_dirs`, and the set's question templates."""
    runs = [(Path(d), load_metrics(Path(d))) for d in run_dirs]
    groups, tables = model_tables(runs, [dataset])
    by_label = {g.label: g for g in groups}
    if label not in by_label:
        raise ValueError(f"no run holds a model labelled {label!r} (labels: {', '.join(by_label) or 'none'})")
    table = tables[label, dataset]
    if table is None:
        raise ValueError(f"{label} has no evaluation files for {dataset} in every run that holds it")
    return by_label[label], table, set_templates(groups, [dataset])[dataset]


def _only(table: SeedTable, question_templates: dict[str, str], templates: Collection[str] | None) -> SeedTable:
    """`table` restricted to the questions of `templates` (all of them when None)."""
    if templates is None:
        return table
    wanted = {str(t) for t in templates}
    unknown = wanted - set(question_templates.values())
    if not wanted or unknown:
        raise ValueError(f"no question of the set comes from {', '.join(sorted(unknown)) or 'an empty pool'} "
                         f"(templates: {', '.join(sorted(set(question_templates.values())))})")
    keep = [i for i, q in enumerate(table.questions) if question_templates.get(q) in wanted]
    if not keep:
        raise ValueError(f"the compared questions hold none of {', '.join(sorted(wanted))}")
    return SeedTable(table.seeds, [table.questions[i] for i in keep], table.values[:, keep])


def _figures(table: SeedTable, question_templates: dict[str, str], dataset: str) -> dict:
    """The `SeedFigures` fields of a seeds x questions table, template-averaged."""
    strata = difference_strata(table, question_templates, dataset)
    if strata is None:
        raise ValueError(f"the questions of {dataset} do not come from several templates")
    low, high = hierarchical_interval(table.values, strata)
    per_seed = tuple(stratified_mean(table.values[row:row + 1], strata) for row in range(table.values.shape[0]))
    t_low, t_high = seed_t_interval(per_seed) or (None, None)
    return dict(dataset=dataset, estimate=stratified_mean(table.values, strata), low=low, high=high,
                seeds=len(table.seeds), templates=len(strata), questions=len(table.questions), per_seed=per_seed,
                t_low=t_low, t_high=t_high, seed_keys=tuple(table.seeds))


def model_accuracy(run_dirs: Sequence[Path | str], label: str, dataset: str = "gsm_symbolic:test",
                   templates: Collection[str] | None = None) -> ModelAccuracy:
    """`label`'s template-averaged accuracy on `dataset` over the runs' seeds (repeats averaged within
    their seed), on the questions of `templates` if given."""
    _, table, question_templates = _model_table(run_dirs, label, dataset)
    return ModelAccuracy(label=label, **_figures(_only(table, question_templates, templates), question_templates,
                                                 dataset))


def primary_comparison(run_dirs: Sequence[Path | str], method: str, reference: str = "combined",
                       dataset: str = "gsm_symbolic:test", *, templates: Collection[str] | None = None,
                       reference_runs: Sequence[Path | str] | None = None) -> PrimaryComparison:
    """The template-averaged paired difference `method` minus `reference` on `dataset` over the runs in
    `run_dirs` (the reference from `reference_runs` when given), with its 95% hierarchical bootstrap
    interval and the paired t-interval over seeds (see the module's docstring)."""
    method_runs, method_table, question_templates = _model_table(run_dirs, method, dataset)
    reference_group, reference_table, reference_templates = _model_table(
        run_dirs if reference_runs is None else reference_runs, reference, dataset)
    question_templates = {**reference_templates, **question_templates}
    difference = paired_difference(method_table, reference_table)
    if difference is None:
        raise ValueError(f"{method} and {reference} share no seed with answers to the same {dataset} questions")
    difference = _only(difference, question_templates, templates)
    paired = set(difference.seeds)
    runs_per_seed = Counter(key for group in (method_runs, reference_group) for key in group.seed_keys()
                            if key in paired)
    return PrimaryComparison(method=method, reference=reference, repeats=sum(runs_per_seed.values()) - 2 * len(paired),
                             **_figures(difference, question_templates, dataset))
