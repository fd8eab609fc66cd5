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


# Two-sided 95% quantiles of Student's t, t(0.975, df) for df = 1..30 (the standard table's values).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table above, then the Cornish-Fisher expansion around the normal's 1.96
    (within 0.001 of the exact value beyond 30 degrees of freedom)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def seed_t_interval(per_seed: Sequence[float]) -> tuple[float, float] | None:
    """95% t-interval of the mean of per-seed values (n - 1 degrees of freedom); None below 2 seeds."""
    values = np.asarray(per_seed, dtype=float)
    if len(values) < 2:
        return None
    half = t_quantile_975(len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)
