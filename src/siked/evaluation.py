"""Evaluation summaries: accuracy per dataset and per chosen strategy, strategy-choice
distributions, KL(train || student) and per-question routing (the oracle upper bound)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked.errors import SikedError, one_line
from siked.records import Problem, Solution, Verdict

if TYPE_CHECKING:
    from siked.config import SikedConfig

NO_STRATEGY = "none"
"""Strategy name of a student output that carries no known `[tag]:`."""

def accuracy_block(verdicts: Iterable[Verdict]) -> dict[str, float | int]:
    verdicts = list(verdicts)
    correct = sum(v.correct for v in verdicts)
    return {
        "total": len(verdicts),
        "correct": correct,
        "accuracy": correct / len(verdicts) if verdicts else 0.0,
    }


def distribution(names: Iterable[str]) -> dict[str, float]:
    """Shares of each strategy name (sorted by name); empty input gives an empty mapping."""
    counts = Counter(names)
    total = sum(counts.values())
    return {name: counts[name] / total for name in sorted(counts)} if total else {}


def distribution_from_counts(counts: Mapping[str, int]) -> dict[str, float]:
    """Shares from counts per strategy name (sorted by name)."""
    return distribution(Counter(counts).elements())


def summarize(verdicts: Sequence[Verdict]) -> dict:
    """Greedy-evaluation summary: one verdict per problem."""
    by_strategy: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_strategy[verdict.strategy].append(verdict)
    return {
        **accuracy_block(verdicts),
        "by_strategy": {name: accuracy_block(group) for name, group in sorted(by_strategy.items())},
        "strategy_distribution": distribution(v.strategy for v in verdicts),
        "by_status": dict(sorted(Counter(v.status for v in verdicts).items())),
    }


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float], eps: float = 1e-6) -> float:
    """KL(p || q) over the union of strategy names, with q smoothed by `eps` so it stays finite."""
    names = sorted(set(p) | set(q))
    if not names:
        return 0.0
    q_smooth = {n: q.get(n, 0.0) + eps for n in names}
    norm = sum(q_smooth.values())
    return sum(
        p[n] * math.log(p[n] / (q_smooth[n] / norm)) for n in names if p.get(n, 0.0) > 0.0
    )


def sample_summary(problems: Sequence[Problem], solutions: Sequence[Solution], verdicts: Sequence[Verdict]) -> dict:
    """What the student's own samples on the training questions look like."""
    solved = {v.problem_id for v in verdicts if v.correct}
    return {
        "samples": len(solutions),
        "correct": sum(v.correct for v in verdicts),
        "questions": len(problems),
        "solved_questions": len(solved),
        "strategy_counts": dict(sorted(Counter(s.strategy for s in solutions).items())),
    }


def routing(problems: Sequence[Problem], forced: Mapping[str, Sequence[Verdict]]) -> dict:
    """Which strategies solve which question when each is forced, and the oracle upper bound.

    `forced[strategy]` holds one verdict per problem, from decoding with that strategy forced.
    """
    solved_by: dict[str, set[str]] = {name: {v.problem_id for v in vs if v.correct} for name, vs in forced.items()}
    ids = [p.id for p in problems]
    any_solved = set().union(*solved_by.values()) if solved_by else set()
    only_by = {
        name: len(solved - set().union(*(s for other, s in solved_by.items() if other != name)))
        for name, solved in solved_by.items()
    }
    best_single = max((len(s) for s in solved_by.values()), default=0)
    return {
        "questions": len(ids),
        "oracle_accuracy": len(any_solved & set(ids)) / len(ids) if ids else 0.0,
        "best_single_accuracy": best_single / len(ids) if ids else 0.0,
        "solved_by": {name: len(s) for name, s in solved_by.items()},
        "only_by": only_by,
        "forced_accuracy": {name: accuracy_block(vs)["accuracy"] for name, vs in forced.items()},
        "per_question": {pid: sorted(n for n, s in solved_by.items() if pid in s) for pid in ids},
    }


def grade_student_outputs(
    grader: Any, by_id: Mapping[str, Problem], solutions: Sequence[Solution], progress: Any = None
) -> list[Verdict]:
    """Grade student outputs; one without a known strategy tag is `invalid`, not an error."""
    from siked.strategies import strategy_names

    known = set(strategy_names())
    tagged = [s for s in solutions if s.strategy in known]
    graded = iter(grader.grade_many([(by_id[s.problem_id], s.strategy, s.solution) for s in tagged], progress))
    return [
        next(graded) if s.strategy in known else Verdict(
            problem_id=s.problem_id, strategy=s.strategy, status="invalid", correct=False,
            detail="no known strategy tag",
        )
        for s in solutions
    ]


@contextmanager
def open_student(model: str | Path, config: SikedConfig) -> Iterator[tuple[Any, Any]]:
    """(source, loaded generation backend) for `model`, to reuse across many decodes."""
    from siked.student import locate_model, open_backend

    source = locate_model(model)
    style = source.prompt_style or config.student.prompt_style
    backend = open_backend(source, config.generation, style)
    try:
        yield source, backend
    finally:
        backend.close()


def decode_and_grade(
    student: tuple[Any, Any], problems: Sequence[Problem], config: SikedConfig, grader: Any, *,
    greedy: bool, mode: str = "free", samples: int = 1, console: Any = None,
) -> tuple[list[Solution], list[Verdict]]:
    """The student's solutions of `problems` (forced to `mode` unless free), graded."""
    from siked.student import generate_solutions

    source, backend = student
    solutions = generate_solutions(
        source, list(problems), config, mode=mode, greedy=greedy, samples=samples,
        backend=backend, console=console,
    )
    return solutions, grade_student_outputs(grader, {p.id: p for p in problems}, solutions)


def evaluate_model(
    model: str,
    sets: Mapping[str, Sequence[Problem]],
    config: SikedConfig,
    routing_too: bool = False,
    console: Any = None,
) -> dict[str, dict]:
    """Greedy free-choice evaluation of `model` on each set (and forced strategies for routing)."""
    from siked.grading import Grader
    from siked.sandbox import SandboxPool
    from siked.strategies import strategy_names

    results: dict[str, dict] = {}
    with SandboxPool.from_config(config.sandbox) as sandbox, open_student(model, config) as student:
        grader = Grader.from_config(config, sandbox)
        for key, problems in sets.items():
            decode = lambda mode, ps=problems: decode_and_grade(  # noqa: E731
                student, ps, config, grader, greedy=True, mode=mode, console=console)[1]
            results[key] = summarize(decode("free"))
            if routing_too:
                forced = {name: decode(name) for name in strategy_names()}
                results[key]["routing"] = routing(problems, forced)
    return results


class EvaluationError(SikedError):
    """A run directory or model that cannot be evaluated; the message names the file."""


def run_overview(run_dir: Path) -> dict:
    """Per iteration: α, the strategy distributions of teacher data, mix and student, and the KL."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist: the run has not finished (rerun `siked run` to resume)")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{path} cannot be read ({one_line(exc)}); rerun `siked run` to rewrite it") from None
    rows = []
    for entry in metrics.get("iterations", []):
        train = entry.get("train", {})
        student = entry.get("student", {})
        rows.append({
            "iteration": entry["iteration"],
            "alpha": train.get("alpha", 0.0),
            "train": _shares(train.get("strategy_counts", {})),
            "student": _shares(student.get("strategy_counts", {})),
            "kl": entry.get("kl_train_student"),
            "validation": entry.get("eval", {}).get("validation", {}).get("accuracy"),
        })
    return {
        "run": str(run_dir),
        "best_model": metrics.get("best_model"),
        "teacher": _shares(metrics.get("teacher", {}).get("strategy_counts", {})),
        "iterations": rows,
    }


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    return distribution(Counter(counts).elements())
