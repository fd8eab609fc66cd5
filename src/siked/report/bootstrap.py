"""Hierarchical bootstrap of a mean accuracy over seeds and questions (`siked compare`).

The data are a seeds x questions matrix: row s holds, per question, the accuracy of the runs of seed s
(0 or 1 for one run; the mean of its repeats where runs share the seed), or a per-question difference
between two models' runs of that seed. One replicate draws as many seeds as there are rows, with
replacement, and then, independently for each drawn seed, as many questions as there are columns, with
replacement; its statistic is the mean over the drawn seeds of the mean over their drawn questions. The
95% interval is the 2.5th to 97.5th percentile of the replicates.

Both sources of variation enter the interval: which questions were asked and which seeds were run. A
question-only bootstrap after averaging the runs would ignore how far seeds disagree. With one seed
the seed draw is always that seed, and the interval covers the questions only.

Strata (templates) make the question draw stratified: each drawn seed draws within each stratum as
many of its questions as it has, and the statistic is the mean over strata of the stratum means (the
template-averaged accuracy, or difference). The generator is seeded (`RNG_SEED`), so the same data give the same
interval every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
RNG_SEED = 0
CHUNK = 200
"""Replicates drawn at once: bounds the memory of the index arrays (chunk x seeds x questions)."""


def hierarchical_replicates(values: np.ndarray, strata: Sequence[np.ndarray] | None = None,
                            resamples: int = BOOTSTRAP_RESAMPLES, seed: int = RNG_SEED) -> np.ndarray:
    """Bootstrap replicates of the (stratum-averaged) mean of a seeds x questions matrix."""
    values = np.asarray(values, dtype=float)
    n_seeds, n_questions = values.shape
    columns = [np.asarray(s, dtype=int) for s in strata] if strata else [np.arange(n_questions)]
    rng = np.random.default_rng(seed)
    replicates = []
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        drawn_seeds = rng.integers(0, n_seeds, size=(size, n_seeds))[:, :, None]
        total = np.zeros(size)
        for members in columns:
            drawn_questions = members[rng.integers(0, len(members), size=(size, n_seeds, len(members)))]
            total += values[drawn_seeds, drawn_questions].mean(axis=(1, 2))
        replicates.append(total / len(columns))
    return np.concatenate(replicates)


def stratified_mean(values: np.ndarray, strata: Sequence[np.ndarray] | None = None) -> float:
    """The statistic the replicates estimate: mean over strata of the mean over seeds and questions."""
    values = np.asarray(values, dtype=float)
    if not strata:
        return float(values.mean())
    return float(np.mean([values[:, np.asarray(s, dtype=int)].mean() for s in strata]))


def hierarchical_interval(values: np.ndarray, strata: Sequence[np.ndarray] | None = None) -> tuple[float, float]:
    """95% percentile interval of the hierarchical bootstrap (see the module's docstring)."""
    low, high = np.percentile(hierarchical_replicates(values, strata), [2.5, 97.5])
    return float(low), float(high)
