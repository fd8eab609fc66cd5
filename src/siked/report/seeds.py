"""Runs of the same methods under several seeds (`siked compare`): mean accuracy over seeds and
paired differences against a reference method, with bootstrap intervals over questions.

A model is known across runs by its label: `SIKeD <mixing> iteration <k>`, `SIKeD <mixing>
(chosen)` for the iteration validation chose, or the baseline's method. Its per-question verdicts
come from its evaluation files, so a difference between two models compares them on the same
questions (paired), which is far tighter than comparing two independent intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siked.io import read_jsonl
from siked.metrics import VALIDATION, Metrics
from siked.records import GradedSolution
from siked.report.document import MISSING
from siked.rundir import eval_file

BOOTSTRAP_RESAMPLES = 2000
CHOSEN = "(chosen)"


@dataclass
class ModelRuns:
    """One model label and, per run that has it, the folder holding its evaluation files."""

    label: str
    folders: list[Path] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)


def model_folders(run_dir: Path, metrics: Metrics) -> dict[str, Path]:
    """Label -> model folder (`iter<k>`, `baselines/<method>`) for every evaluated model of one run."""
    method = metrics.run.method or "siked"
    if method != "siked":
        return {method: run_dir / "baselines" / method}
    mixing = metrics.run.mixing.get("mode", "")
    folders = {f"SIKeD {mixing} iteration {it.iteration}": run_dir / f"iter{it.iteration}"
               for it in metrics.iterations}
    best, _ = metrics.best()
    if best is not None:
        folders[f"SIKeD {mixing} {CHOSEN}"] = run_dir / f"iter{best.iteration}"
    folders.update({name: run_dir / "baselines" / name for name in metrics.baselines})
    return folders


def group_models(runs: Sequence[tuple[Path, Metrics]]) -> list[ModelRuns]:
    groups: dict[str, ModelRuns] = {}
    for run_dir, metrics in runs:
        for label, folder in model_folders(Path(run_dir), metrics).items():
            group = groups.setdefault(label, ModelRuns(label))
            group.folders.append(folder)
            group.seeds.append(metrics.run.seed)
    return list(groups.values())


def correctness(folder: Path, dataset: str) -> dict[str, bool] | None:
    """Problem id -> correct, from the model's greedy outputs on one set (None: not evaluated there)."""
    path = eval_file(folder, dataset)
    if not path.is_file():
        return None
    return {row.problem_id: row.verdict.correct for row in read_jsonl(path, GradedSolution)}


def per_question_mean(group: ModelRuns, dataset: str) -> tuple[dict[str, float], list[float]] | None:
    """Per-question accuracy averaged over the group's runs (questions every run answered), and
    each run's own accuracy on those questions."""
    tables = [correctness(folder, dataset) for folder in group.folders]
    if not tables or any(t is None for t in tables):
        return None
    common = sorted(set.intersection(*(set(t) for t in tables)))
    if not common:
        return None
    means = {q: float(np.mean([t[q] for t in tables])) for q in common}
    return means, [float(np.mean([t[q] for q in common])) for t in tables]


def bootstrap_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `values` under resampling with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(BOOTSTRAP_RESAMPLES, len(values)))
    means = values[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def fmt_mean_cell(means: dict[str, float], per_run: list[float]) -> str:
    values = np.array(list(means.values()))
    low, high = bootstrap_interval(values)
    runs = ", ".join(f"{100 * v:.1f}" for v in per_run)
    return f"{100 * values.mean():.1f}% [{100 * low:.1f}–{100 * high:.1f}] ({runs})"


def fmt_difference_cell(model: dict[str, float], reference: dict[str, float]) -> str:
    common = sorted(set(model) & set(reference))
    if not common:
        return MISSING
    diffs = np.array([model[q] - reference[q] for q in common])
    low, high = bootstrap_interval(diffs)
    return f"{100 * diffs.mean():+.1f} [{100 * low:+.1f} to {100 * high:+.1f}]"


def fmt_seeds(group: ModelRuns) -> str:
    if all(seed is not None for seed in group.seeds):
        return ", ".join(str(seed) for seed in group.seeds)
    return str(len(group.folders))


def seeds_section(runs: Sequence[tuple[Path, Metrics]], datasets: Sequence[str], reference: str = "combined") -> str:
    """Markdown: mean accuracy over runs per model label, and differences from `reference`."""
    groups = group_models(runs)
    if not any(len(g.folders) > 1 for g in groups):
        return ""
    datasets = [VALIDATION, *(d for d in datasets if d != VALIDATION)]
    means = {(g.label, d): per_question_mean(g, d) for g in groups for d in datasets}
    if not any(means[g.label, d] for g in groups if len(g.folders) > 1 for d in datasets):
        return ""  # no evaluation files to average (e.g. metrics copied without their run)
    lines = ["## Over seeds", "",
             "Each model's accuracy averaged over the runs that have it (seeds listed), then [95% interval: "
             f"percentile bootstrap over questions, {BOOTSTRAP_RESAMPLES:,} resamples, of the per-question "
             "accuracy averaged over the runs], then (each run's accuracy). The interval covers the choice of "
             "questions; the spread of the runs shows the seeds'.", "",
             "| model | seeds | " + " | ".join(datasets) + " |", "|" + "---|" * (2 + len(datasets))]
    for g in groups:
        cells = [fmt_mean_cell(*means[g.label, d]) if means[g.label, d] else MISSING for d in datasets]
        lines.append(f"| {g.label} | {fmt_seeds(g)} | " + " | ".join(cells) + " |")
    if any(g.label == reference for g in groups):
        lines += ["", f"## Difference from {reference}", "",
                  f"Accuracy minus {reference}'s, in points, on the questions both answered, per-question "
                  "accuracies averaged over the runs first; [95% paired bootstrap interval over questions].", "",
                  "| model | " + " | ".join(datasets) + " |", "|" + "---|" * (1 + len(datasets))]
        for g in groups:
            if g.label == reference:
                continue
            cells = []
            for d in datasets:
                model, ref = means[g.label, d], means[reference, d]
                cells.append(fmt_difference_cell(model[0], ref[0]) if model and ref else MISSING)
            lines.append(f"| {g.label} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])
