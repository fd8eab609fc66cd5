"""Runs of the same methods under several seeds (`siked compare`): mean accuracy over seeds and paired
differences against a reference method, with hierarchical bootstrap intervals (seeds, then questions).

A model is known across runs by its label: `SIKeD <line> <mixing> iteration <k>`, `SIKeD <line> <mixing>
(chosen)` for the iteration validation chose, or the baseline's method. Its per-question verdicts
come from its evaluation files. Runs are grouped by their recorded seed: runs that share a seed are
repeats, averaged per question within the seed (they say how far one seed's run is reproducible, not
how seeds differ) and never counted as another seed. A run without a recorded seed stands alone.

Each model on each set becomes a seeds x questions matrix of per-question accuracies; its mean's 95%
interval comes from a hierarchical bootstrap (`siked.report.bootstrap`): seeds drawn with replacement,
then questions drawn with replacement within each drawn seed, so the interval widens when seeds
disagree. A difference from the reference pairs by seed: for each seed both models have, the
per-question difference of their runs of that seed on the questions both answered; the same bootstrap
then runs over that matrix of differences. With one seed the interval covers the questions only, and
the table says so.

On a set whose questions come from several templates (`siked.report.templates`), the difference table
also gives the template-averaged difference: per seed, each template's mean per-question difference on
the paired questions, then the mean of those over templates (each template alike, however many
questions it has), then the mean over seeds. Its bootstrap draws seeds, then questions within each
template of each drawn seed. `siked.report.primary.primary_comparison` returns that number and its
interval for one model, reference and set, for scripts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siked.evaluation import natural_key
from siked.io import jsonl_source, read_jsonl
from siked.metrics import Metrics, run_label
from siked.names import ModelName
from siked.records import GradedSolution
from siked.report.bootstrap import BOOTSTRAP_RESAMPLES, hierarchical_interval, stratified_mean
from siked.report.document import MISSING
from siked.rundir import eval_file

CHOSEN = "(chosen)"
SeedKey = int | str
"""The recorded seed, or `run <dir>` for a run that recorded none (it pairs only within its run)."""


@dataclass
class ModelRuns:
    """One model label and, per run that has it, the folder holding its evaluation files."""

    label: str
    folders: list[Path] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)

    def seed_keys(self) -> list[SeedKey]:
        return [seed if seed is not None else f"run {run_dir}" for seed, run_dir in zip(self.seeds, self.run_dirs,
                                                                                        strict=True)]

    def seed_count(self) -> int:
        return len(set(self.seed_keys()))


@dataclass
class SeedTable:
    """One model on one set (or a paired difference): per-question values, one row per seed (its
    repeats averaged), one column per question."""

    seeds: list[SeedKey]
    questions: list[str]
    values: np.ndarray

    def per_seed(self) -> np.ndarray:
        return self.values.mean(axis=1)

    def select(self, seeds: Sequence[SeedKey], questions: Sequence[str]) -> np.ndarray:
        column = {q: i for i, q in enumerate(self.questions)}
        return self.values[np.ix_([self.seeds.index(s) for s in seeds], [column[q] for q in questions])]


def model_folders(run_dir: Path, metrics: Metrics) -> dict[str, Path]:
    """Label -> model folder (`iter<k>`, `baselines/<method>`) for every evaluated model of one run."""
    method = metrics.run.method or "siked"
    if method != "siked":
        return {method: run_dir / str(ModelName(baseline=method))}
    label = run_label(metrics.run)  # names the line and mode: `SIKeD unbiased adaptive`, the control
    folders = {f"{label} iteration {it.iteration}": run_dir / str(ModelName(iteration=it.iteration))
               for it in metrics.iterations}
    best, _ = metrics.best()
    if best is not None:
        folders[f"{label} {CHOSEN}"] = run_dir / str(ModelName(iteration=best.iteration))
    folders.update({name: run_dir / str(ModelName(baseline=name)) for name in metrics.baselines})
    return folders


def group_models(runs: Sequence[tuple[Path, Metrics]]) -> list[ModelRuns]:
    groups: dict[str, ModelRuns] = {}
    for run_dir, metrics in runs:
        for label, folder in model_folders(Path(run_dir), metrics).items():
            group = groups.setdefault(label, ModelRuns(label))
            group.folders.append(folder)
            group.seeds.append(metrics.run.seed)
            group.run_dirs.append(Path(run_dir))
    return list(groups.values())


def correctness(folder: Path, dataset: str) -> dict[str, bool] | None:
    """Problem id -> correct, from the model's greedy outputs on one set (None: not evaluated there)."""
    path = eval_file(folder, dataset)
    if not jsonl_source(path).is_file():
        return None
    return {row.problem_id: row.verdict.correct for row in read_jsonl(path, GradedSolution)}


def seed_order(key: SeedKey) -> tuple[bool, int, str]:
    return isinstance(key, str), key if isinstance(key, int) else 0, str(key)


def seed_table(group: ModelRuns, dataset: str) -> SeedTable | None:
    """The group's per-question accuracy on the questions every run answered, repeats averaged within
    their seed (None: a run has no evaluation file for the set)."""
    tables = [correctness(folder, dataset) for folder in group.folders]
    if not tables or any(t is None for t in tables):
        return None
    common = sorted(set.intersection(*(set(t) for t in tables if t is not None)))
    if not common:
        return None
    by_seed: dict[SeedKey, list[dict[str, bool]]] = {}
    for key, table in zip(group.seed_keys(), tables, strict=True):
        by_seed.setdefault(key, []).append(table or {})
    seeds = sorted(by_seed, key=seed_order)
    values = np.array([[np.mean([run[q] for run in by_seed[s]]) for q in common] for s in seeds], dtype=float)
    return SeedTable(seeds, common, values)


def paired_difference(model: SeedTable, reference: SeedTable) -> SeedTable | None:
    """Per seed both have, the model's per-question accuracy minus the reference's (same questions)."""
    seeds = [s for s in model.seeds if s in reference.seeds]
    questions = sorted(set(model.questions) & set(reference.questions))
    if not seeds or not questions:
        return None
    return SeedTable(seeds, questions, model.select(seeds, questions) - reference.select(seeds, questions))


def template_strata(questions: Sequence[str], templates: dict[str, str], dataset: str) -> dict[str, np.ndarray]:
    """Template -> the column indices of its questions among `questions` (templates in natural order; a
    question without a template counts under the set's name)."""
    members: dict[str, list[int]] = defaultdict(list)
    for index, question in enumerate(questions):
        members[templates.get(question, dataset)].append(index)
    return {name: np.array(members[name]) for name in sorted(members, key=natural_key)}


def has_templates(templates: dict[str, str] | None) -> bool:
    """Whether a set's questions come from several templates (else template-averaged means pooled)."""
    return bool(templates) and len(set(templates.values())) > 1


def difference_strata(difference: SeedTable, templates: dict[str, str] | None, dataset: str
                      ) -> list[np.ndarray] | None:
    """The paired questions' columns per template, for the template-averaged difference (None: the set has
    no templates)."""
    if not has_templates(templates):
        return None
    return list(template_strata(difference.questions, templates or {}, dataset).values())


def fmt_seed_list(keys: Sequence[SeedKey]) -> str:
    """`2 seeds: 0, 1; repeats: seed 0 ×2`: the distinct seeds, then the seeds run more than once."""
    counts = Counter(keys)
    recorded = sorted((k for k in counts if isinstance(k, int)), key=seed_order)
    unrecorded = len(counts) - len(recorded)
    parts = [", ".join(str(k) for k in recorded)] if recorded else []
    if unrecorded:
        parts.append(f"{unrecorded} run{'s' if unrecorded > 1 else ''} without a recorded seed")
    text = f"{len(counts)} seed{'s' if len(counts) > 1 else ''}: " + "; ".join(parts)
    repeats = [f"seed {k} ×{counts[k]}" for k in recorded if counts[k] > 1]
    return text + (f"; repeats: {', '.join(repeats)}" if repeats else "")


def fmt_interval_cell(table: SeedTable, strata: Sequence[np.ndarray] | None = None, signed: bool = False) -> str:
    """`62.5% [40.0–85.0]` (or `+2.5 [-1.0 to +6.0]` for a difference): mean and its 95% interval."""
    mean = stratified_mean(table.values, strata)
    low, high = hierarchical_interval(table.values, strata)
    if signed:
        return f"{100 * mean:+.1f} [{100 * low:+.1f} to {100 * high:+.1f}]"
    return f"{100 * mean:.1f}% [{100 * low:.1f}–{100 * high:.1f}]"


def fmt_mean_cell(table: SeedTable) -> str:
    per_seed = ", ".join(f"{100 * v:.1f}" for v in table.per_seed())
    return f"{fmt_interval_cell(table)} ({per_seed})"


METHOD = (f"95% interval: hierarchical bootstrap, {BOOTSTRAP_RESAMPLES:,} resamples: seeds drawn with replacement, "
          "then questions drawn with replacement within each drawn seed")


def one_seed_note(seed_counts: Sequence[int]) -> str:
    """What the header says when some rows (or all) rest on one seed."""
    counts = set(seed_counts)
    if counts == {1}:
        return (" Only one seed: the intervals reflect the choice of questions only, not the spread between "
                "seeds.")
    if 1 in counts:
        return " Rows with one seed: their interval reflects the choice of questions only."
    return ""


def means_table(groups: Sequence[ModelRuns], tables: dict, datasets: Sequence[str]) -> list[str]:
    lines = ["## Over seeds", "",
             "Each model's accuracy, mean over seeds; runs that share a seed are repeats, averaged per question "
             f"within their seed first and never counted as another seed. [{METHOD}]; (each seed's accuracy)."
             + one_seed_note([g.seed_count() for g in groups]), "",
             "| model | seeds | " + " | ".join(datasets) + " |", "|" + "---|" * (2 + len(datasets))]
    for g in groups:
        cells = [fmt_mean_cell(tables[g.label, d]) if tables[g.label, d] else MISSING for d in datasets]
        lines.append(f"| {g.label} | {fmt_seed_list(g.seed_keys())} | " + " | ".join(cells) + " |")
    return lines


def paired_seeds(model: ModelRuns, reference: ModelRuns) -> list[SeedKey]:
    """The seeds both models were run with, in the model's order."""
    theirs = set(reference.seed_keys())
    return [key for key in dict.fromkeys(model.seed_keys()) if key in theirs]


def difference_columns(datasets: Sequence[str], templates: dict[str, dict[str, str]]) -> list[tuple[str, bool]]:
    """(set, template-averaged?) per column: each set's pooled difference, and beside it, on a set of
    several templates, its template-averaged difference."""
    columns = []
    for d in datasets:
        columns.append((d, False))
        if has_templates(templates.get(d)):
            columns.append((d, True))
    return columns


def column_header(dataset: str, averaged: bool, templated: bool) -> str:
    if not templated:
        return dataset
    return f"{dataset} template-averaged" if averaged else f"{dataset} pooled"


def differences_table(groups: Sequence[ModelRuns], tables: dict, datasets: Sequence[str], reference: str,
                      templates: dict[str, dict[str, str]] | None = None) -> list[str]:
    templates = templates or {}
    by_label = {g.label: g for g in groups}
    others = [g for g in groups if g.label != reference]
    paired = {g.label: paired_seeds(g, by_label[reference]) for g in others}
    columns = difference_columns(datasets, templates)
    templated = {d for d, averaged in columns if averaged}
    averaged_note = (" Template-averaged (sets made of several templates): per seed, each template's mean "
                     "per-question difference on the paired questions, then their mean over templates, each "
                     "template alike; pooled: every question alike. Its interval draws questions within each "
                     "template of each drawn seed.") if templated else ""
    lines = ["## Difference from " + reference, "",
             f"Accuracy minus {reference}'s, in points, paired by seed: for each seed both have, the per-question "
             f"difference of their runs of that seed (repeats averaged) on the questions both answered; [{METHOD}, "
             "of the paired differences]. Seeds only one of the two has are left out." + averaged_note
             + one_seed_note([len(seeds) for seeds in paired.values() if seeds]), "",
             "| model | paired seeds | " + " | ".join(column_header(d, a, d in templated) for d, a in columns) + " |",
             "|" + "---|" * (2 + len(columns))]
    for g in others:
        cells = []
        for d, averaged in columns:
            model, ref = tables[g.label, d], tables[reference, d]
            difference = paired_difference(model, ref) if model and ref else None
            strata = difference_strata(difference, templates.get(d), d) if difference and averaged else None
            cells.append(fmt_interval_cell(difference, strata, signed=True) if difference else MISSING)
        seeds = fmt_seed_list(paired[g.label]) if paired[g.label] else "none"
        lines.append(f"| {g.label} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def model_tables(runs: Sequence[tuple[Path, Metrics]], datasets: Sequence[str]
                 ) -> tuple[list[ModelRuns], dict[tuple[str, str], SeedTable | None]]:
    """The runs' models grouped by label, and each one's seed table on each set (validation first)."""
    groups = group_models(runs)
    return groups, {(g.label, d): seed_table(g, d) for g in groups for d in datasets}


def seeds_section(groups: Sequence[ModelRuns], tables: dict, datasets: Sequence[str], reference: str = "combined",
                  templates: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown: mean accuracy over seeds per model label, and paired differences from `reference` (pooled,
    and template-averaged on the sets `templates` (set -> problem id -> template) gives several templates;
    "" when no model has more than one run, or none has evaluation files)."""
    if not any(len(g.folders) > 1 and any(tables[g.label, d] for d in datasets) for g in groups):
        return ""
    lines = means_table(groups, tables, datasets)
    if any(g.label == reference for g in groups):
        lines += ["", *differences_table(groups, tables, datasets, reference, templates)]
    return "\n".join([*lines, ""])
