"""`siked eval`'s per-question output and a run's own evaluation sets.

`siked eval RUN` without `--data` evaluates exactly the sets the run evaluated: the specs in its
config.yaml (`data.evaluation`), read from the copies the run wrote to RUN/data/ where they exist.
A `--data NAME:SPLIT` that names one of the run's sets but draws it differently (other templates,
limit or file) is evaluated as given, with a warning saying how it differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from siked.config import DatasetSpec, load_config
from siked.data import load_spec
from siked.evaluation import EvaluationError
from siked.io import jsonl_source, read_jsonl
from siked.records import Prediction, Problem, Solution, Verdict
from siked.rundir import file_key

RUN_CONFIG = "config.yaml"


def spec_key(spec: DatasetSpec) -> str:
    return f"{spec.name}:{spec.split}"


def prediction_rows(key: str, problems: Sequence[Problem], solutions: Sequence[Solution],
                    verdicts: Sequence[Verdict]) -> list[Prediction]:
    """One row per greedy solution (one per question), joined with its question and verdict."""
    by_id = {p.id: p for p in problems}
    rows = []
    for solution, verdict in zip(solutions, verdicts, strict=True):
        problem = by_id[solution.problem_id]
        rows.append(Prediction(
            set=key, problem_id=problem.id, question=problem.question, gold=problem.answer,
            gold_text=problem.answer_text, strategy=verdict.strategy, solution=solution.solution,
            answer=verdict.predicted, answer_text=verdict.predicted_text, correct=verdict.correct,
            status=verdict.status, detail=verdict.detail, truncated=verdict.truncated or solution.truncated,
        ))
    return rows


def run_specs(run_dir: Path) -> list[DatasetSpec]:
    """The evaluation sets a run's config.yaml names (`data.evaluation`)."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist, so the run's evaluation sets are unknown; give --data")
    return list(load_config(path, recorded=True).data.evaluation)


def run_evaluation_sets(run_dir: Path, limit: int | None = None) -> dict[str, list[Problem]]:
    """The run's own evaluation sets, from RUN/data/ where the run wrote them (else loaded again)."""
    sets = {}
    for spec in run_specs(run_dir):
        key = spec_key(spec)
        copy = Path(run_dir) / "data" / f"eval-{file_key(key)}.jsonl"
        problems = read_jsonl(copy, Problem) if jsonl_source(copy).is_file() else load_spec(spec)
        sets[key] = problems[:limit] if limit is not None else problems
    return sets


def how_spec_differs(asked: DatasetSpec, run: DatasetSpec) -> str | None:
    """How `asked` (from the command line) draws a set differently from the run's spec of it, or None."""
    key = spec_key(asked)
    differences = []
    if run.templates is not None and asked.templates != run.templates:
        differences.append(f"{key} here draws from all templates; the run's used {run.templates}")
    if run.limit is not None and asked.limit != run.limit:
        here = f"the first {asked.limit}" if asked.limit is not None else "all"
        differences.append(f"here {here} problems are kept; the run kept the first {run.limit}")
    if run.file is not None and asked.file != run.file:
        here = asked.file if asked.file is not None else "the default source"
        differences.append(f"here it is read from {here}; the run read {run.file}")
    if not differences:
        return None
    if run.templates is None:
        differences[0] = f"{key}: {differences[0]}"
    return "; ".join(differences) + " (omit --data to evaluate the run's own sets)"


def differences_from_run(run_dir: Path, asked: Sequence[DatasetSpec]) -> list[str]:
    """A warning line for each asked set that the run evaluated, but drawn differently."""
    if not (Path(run_dir) / RUN_CONFIG).is_file():
        return []
    runs = {spec_key(spec): spec for spec in run_specs(run_dir)}
    found = (how_spec_differs(spec, runs[spec_key(spec)]) for spec in asked if spec_key(spec) in runs)
    return [line for line in found if line]
