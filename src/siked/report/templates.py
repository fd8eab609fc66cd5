"""Accuracy per template (`siked compare`): gsm_symbolic's problems come from generator templates
(`Problem.meta["template"]`); other datasets' problems are grouped by their source.

A set's pooled accuracy weighs templates by how many questions each has; the template-averaged
accuracy (the mean of the per-template accuracies) weighs each template alike, so a template with
few questions cannot hide behind a large one. Both are means over seeds (repeats averaged within
their seed, as in `siked.report.seeds`), with 95% intervals from the hierarchical bootstrap: seeds
drawn with replacement, then questions drawn with replacement within each drawn seed (for the
template-averaged mean: within each template of each drawn seed).

A question's template is read from the run's own copy of the set (`data/validation.jsonl`,
`data/eval-<set>.jsonl`); where no run has that file, every question counts under the set's name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siked.evaluation import natural_key, template_of
from siked.io import jsonl_source, read_jsonl
from siked.metrics import VALIDATION
from siked.records import Problem
from siked.report.bootstrap import BOOTSTRAP_RESAMPLES
from siked.report.document import MISSING
from siked.report.seeds import (
    ModelRuns,
    SeedTable,
    fmt_interval_cell,
    fmt_seed_list,
    has_templates,
    template_strata,
)
from siked.rundir import file_key


def problem_file(run_dir: Path, dataset: str) -> Path:
    """Where a run keeps its copy of one evaluation set's problems."""
    name = "validation.jsonl" if dataset == VALIDATION else f"eval-{file_key(dataset)}.jsonl"
    return run_dir / "data" / name


def question_templates(run_dirs: Sequence[Path], dataset: str) -> dict[str, str]:
    """Problem id -> template, from the first run holding the set's problems ({}: none does)."""
    for run_dir in run_dirs:
        path = problem_file(run_dir, dataset)
        if jsonl_source(path).is_file():
            return {problem.id: template_of(problem) for problem in read_jsonl(path, Problem)}
    return {}


def template_means(table: SeedTable, strata: dict[str, np.ndarray]) -> dict[str, float]:
    """Per template: accuracy on its questions, mean over seeds."""
    return {name: float(table.values[:, columns].mean()) for name, columns in strata.items()}


def template_table(groups: Sequence[ModelRuns], tables: dict, dataset: str, templates: dict[str, str]) -> list[str]:
    sizes = Counter(templates.values())
    names = sorted(sizes, key=natural_key)
    lines = [f"### {dataset}", "",
             "| model | seeds | pooled | template-averaged | " + " | ".join(f"{n} (n={sizes[n]})" for n in names) + " |",
             "|" + "---|" * (4 + len(names))]
    for g in groups:
        table = tables.get((g.label, dataset))
        if table is None:
            continue
        strata = template_strata(table.questions, templates, dataset)
        means = template_means(table, strata)
        cells = [f"{100 * means[n]:.1f}%" if n in means else MISSING for n in names]
        lines.append(f"| {g.label} | {fmt_seed_list(g.seed_keys())} | {fmt_interval_cell(table)} | "
                     f"{fmt_interval_cell(table, list(strata.values()))} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def set_templates(groups: Sequence[ModelRuns], datasets: Sequence[str]) -> dict[str, dict[str, str]]:
    """Set -> problem id -> template, read from the groups' runs ({} for a set no run holds the problems of)."""
    run_dirs = list(dict.fromkeys(d for g in groups for d in g.run_dirs))
    return {dataset: question_templates(run_dirs, dataset) for dataset in datasets}


def templates_section(groups: Sequence[ModelRuns], tables: dict, datasets: Sequence[str],
                      templates: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown: per-template accuracy of every model on each set made of several templates ("": none is).
    `templates`: as `set_templates` gives (read from the runs when not given)."""
    templates = templates if templates is not None else set_templates(groups, datasets)
    blocks = []
    for dataset in datasets:
        if not has_templates(templates.get(dataset)) or not any(tables.get((g.label, dataset)) for g in groups):
            continue
        blocks += template_table(groups, tables, dataset, templates[dataset])
    if not blocks:
        return ""
    header = ["## Per template", "",
              "Accuracy on each template's questions (gsm_symbolic's generator; other sets: the problems' source), "
              "mean over seeds (repeats averaged within their seed). Pooled: every question alike; template-averaged: "
              "the mean of the per-template accuracies, each template alike. [95% interval: hierarchical bootstrap, "
              f"{BOOTSTRAP_RESAMPLES:,} resamples: seeds drawn with replacement, then questions drawn with "
              "replacement within each drawn seed (template-averaged: within each template of each drawn seed); "
              "with one seed it reflects the questions only.] n: the set's questions of that template.", ""]
    return "\n".join([*header, *blocks])
