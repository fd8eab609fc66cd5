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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from siked.metrics import load_metrics
from siked.report.bootstrap import hierarchical_interval, seed_t_interval, stratified_mean
from siked.report.seeds import difference_strata, model_tables, paired_difference
from siked.report.templates import set_templates


@dataclass(frozen=True)
class PrimaryComparison:
    """`method` minus `reference` on `dataset`, template-averaged, as fractions; `seeds`: the seeds both
    were run with; `repeats`: runs of those seeds beyond the first of each, both models together (0: one run
    per seed and model); `templates`, `questions`: how many the paired questions span."""

    method: str
    reference: str
    dataset: str
    estimate: float
    low: float
    high: float
    seeds: int
    repeats: int
    templates: int
    questions: int
    per_seed: tuple[float, ...] = ()
    """Each paired seed's template-averaged difference, in seed order."""
    t_low: float | None = None
    t_high: float | None = None


def primary_comparison(run_dirs: Sequence[Path | str], method: str, reference: str = "combined",
                       dataset: str = "gsm_symbolic:test") -> PrimaryComparison:
    """The template-averaged paired difference `method` minus `reference` on `dataset` over the runs in
    `run_dirs`, with its 95% hierarchical bootstrap interval (see the module's docstring)."""
    runs = [(Path(d), load_metrics(Path(d))) for d in run_dirs]
    groups, tables = model_tables(runs, [dataset])
    by_label = {g.label: g for g in groups}
    for label in (method, reference):
        if label not in by_label:
            raise ValueError(f"no run holds a model labelled {label!r} (labels: {', '.join(by_label) or 'none'})")
        if tables[label, dataset] is None:
            raise ValueError(f"{label} has no evaluation files for {dataset} in every run that holds it")
    difference = paired_difference(tables[method, dataset], tables[reference, dataset])
    if difference is None:
        raise ValueError(f"{method} and {reference} share no seed with answers to the same {dataset} questions")
    strata = difference_strata(difference, set_templates(groups, [dataset])[dataset], dataset)
    if strata is None:
        raise ValueError(f"the questions of {dataset} do not come from several templates")
    low, high = hierarchical_interval(difference.values, strata)
    paired = set(difference.seeds)
    runs_per_seed = Counter(key for label in (method, reference) for key in by_label[label].seed_keys()
                            if key in paired)
    per_seed = tuple(stratified_mean(difference.values[row:row + 1], strata) for row in range(difference.values.shape[0]))
    t_interval = seed_t_interval(per_seed)
    return PrimaryComparison(method=method, reference=reference, dataset=dataset,
                             estimate=stratified_mean(difference.values, strata), low=low, high=high,
                             seeds=len(paired), repeats=sum(runs_per_seed.values()) - 2 * len(paired),
                             templates=len(strata), questions=len(difference.questions), per_seed=per_seed,
                             t_low=t_interval[0] if t_interval else None,
                             t_high=t_interval[1] if t_interval else None)
