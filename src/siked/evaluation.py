"""Evaluation statistics: accuracy per dataset and per chosen strategy, strategy-choice
distributions, KL(train || student) and per-question routing (the oracle upper bound).

Pure functions of verdicts and counts; decoding and grading through the student live in
`siked.student.decode`."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from siked.errors import SikedError, one_line
from siked.metrics import (
    METRICS_FILE,
    VALIDATION,
    EvalResult,
    MetricsError,
    RoutingGroup,
    RoutingResult,
    Score,
    StudentStats,
    TrainStats,
    load_metrics,
)
from siked.records import Problem, Solution, Verdict


def score(verdicts: Iterable[Verdict]) -> Score:
    verdicts = list(verdicts)
    correct = sum(v.correct for v in verdicts)
    return Score(total=len(verdicts), correct=correct, accuracy=correct / len(verdicts) if verdicts else 0.0)


def distribution(names: Iterable[str]) -> dict[str, float]:
    """Shares of each strategy name (sorted by name); empty input gives an empty mapping."""
    counts = Counter(names)
    total = sum(counts.values())
    return {name: counts[name] / total for name in sorted(counts)} if total else {}


def distribution_from_counts(counts: Mapping[str, int]) -> dict[str, float]:
    """Shares from counts per strategy name (sorted by name)."""
    return distribution(Counter(counts).elements())


def summarize(verdicts: Sequence[Verdict]) -> dict:
    """Greedy-evaluation summary (an `EvalResult`): one verdict per problem."""
    by_strategy: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_strategy[verdict.strategy].append(verdict)
    total = score(verdicts)
    return EvalResult(
        total=total.total, correct=total.correct, accuracy=total.accuracy,
        by_strategy={name: score(group) for name, group in sorted(by_strategy.items())},
        strategy_distribution=distribution(v.strategy for v in verdicts),
        by_status=dict(sorted(Counter(v.status for v in verdicts).items())),
        truncated=sum(v.truncated for v in verdicts),
    ).dump()


def kl_add_one(train_counts: Mapping[str, int], student_counts: Mapping[str, int],
               names: Iterable[str] = ()) -> float | None:
    """KL(P_train || P_student) in nats, P_student add-one (Laplace) smoothed over the strategies.

    P_train is the training mix's shares; P_student is (count + 1) / (N + K) over the K names that
    appear in either, or in `names` (the taught strategies). A strategy the student never picked
    therefore weighs as one pick in N + K, so the value is bounded by ln(N + K) and reflects the
    student's choices, not a tiny constant; the smoothing's own effect shrinks as N grows.
    None when either side has no counts."""
    train_total, student_total = sum(train_counts.values()), sum(student_counts.values())
    if not train_total or not student_total:
        return None
    support = sorted(set(names) | set(train_counts) | set(student_counts))
    denominator = student_total + len(support)
    return sum(
        (count / train_total) * math.log((count / train_total) / ((student_counts.get(n, 0) + 1) / denominator))
        for n in support if (count := train_counts.get(n, 0)) > 0
    )


def sample_summary(problems: Sequence[Problem], solutions: Sequence[Solution], verdicts: Sequence[Verdict]) -> dict:
    """What the student's own samples on the training questions look like."""
    solved = {v.problem_id for v in verdicts if v.correct}
    return StudentStats(
        samples=len(solutions), correct=sum(v.correct for v in verdicts), questions=len(problems),
        solved_questions=len(solved), strategy_counts=dict(sorted(Counter(s.strategy for s in solutions).items())),
    ).dump()


def template_of(problem: Problem) -> str:
    """The group a problem is reported in: its generator template (gsm_symbolic), else its source."""
    template = problem.meta.get("template")
    return f"template {template}" if template is not None else problem.source


def natural_key(name: str) -> tuple:
    """Sort key that puts `template 2` before `template 10`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def routing_figures(ids: Sequence[str], solved_by: Mapping[str, set[str]]) -> RoutingGroup:
    """Forced accuracy of each strategy on the questions `ids`, the best of them, the oracle and its gap."""
    if not ids:
        return RoutingGroup(questions=0)
    wanted = set(ids)
    forced = {name: len(solved & wanted) / len(ids) for name, solved in solved_by.items()}
    best = max(sorted(forced), key=forced.__getitem__, default=None)
    best_accuracy = forced[best] if best is not None else 0.0
    oracle = len(set().union(*solved_by.values()) & wanted) / len(ids)
    return RoutingGroup(questions=len(ids), forced_accuracy=forced, best_single_strategy=best,
                        best_single_accuracy=best_accuracy, oracle_accuracy=oracle, oracle_gap=oracle - best_accuracy)


def routing(problems: Sequence[Problem], forced: Mapping[str, Sequence[Verdict]]) -> dict:
    """Which strategies solve which question when each is forced, the oracle upper bound and how far
    it lies above the best single strategy, on the whole set and per template.

    `forced[strategy]` holds one verdict per problem, from decoding with that strategy forced.
    """
    solved_by: dict[str, set[str]] = {name: {v.problem_id for v in vs if v.correct} for name, vs in forced.items()}
    ids = [p.id for p in problems]
    only_by = {
        name: len(solved - set().union(*(s for other, s in solved_by.items() if other != name)))
        for name, solved in solved_by.items()
    }
    templates: dict[str, list[str]] = defaultdict(list)
    for problem in problems:
        templates[template_of(problem)].append(problem.id)
    by_template = {name: routing_figures(templates[name], solved_by) for name in sorted(templates, key=natural_key)}
    return RoutingResult(
        **routing_figures(ids, solved_by).model_dump(exclude_unset=True),
        by_template=by_template,
        solved_by={name: len(s) for name, s in solved_by.items()},
        only_by=only_by,
        per_question={pid: sorted(n for n, s in solved_by.items() if pid in s) for pid in ids},
    ).dump()


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sound at small n and at 0 or n)."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


class EvaluationError(SikedError):
    """A run directory or model that cannot be evaluated; the message names the file."""


def run_overview(run_dir: Path) -> dict:
    """`siked eval RUN`, from its metrics.json: per iteration α, the strategy distributions of the
    teacher data, the mix and the student, and the KL."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist: the run has not finished (rerun `siked run` to resume)")
    try:
        metrics = load_metrics(Path(run_dir))
    except MetricsError as exc:
        raise EvaluationError(f"{path} cannot be read ({one_line(exc)}); rerun `siked run` to rewrite it") from None
    rows = []
    for entry in metrics.iterations:
        train = entry.train or TrainStats()
        rows.append({
            "iteration": entry.iteration,
            "alpha": train.alpha if train.alpha is not None else 0.0,
            "train": distribution_from_counts(train.strategy_counts),
            "student": distribution_from_counts(entry.student.strategy_counts if entry.student else {}),
            "kl": entry.kl_train_samples,
            "kl_validation": entry.kl_train_validation if entry.kl_train_validation is not None
            else entry.kl_train_student,
            "validation": entry.eval[VALIDATION].accuracy if VALIDATION in entry.eval else None,
        })
    return {
        "run": str(run_dir),
        "best_model": metrics.best_model,
        "teacher": distribution_from_counts(metrics.teacher.strategy_counts if metrics.teacher else {}),
        "iterations": rows,
    }
