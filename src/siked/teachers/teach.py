"""The teaching stage: sample the teacher, grade every sample, keep the correct ones, write stats.

`teach(config, problems, out_dir)` is what `siked teach` and the SIKeD loop call. It writes to
`out_dir`:

- `teacher.jsonl`: the kept solutions, at most `teacher.keep_per_strategy` distinct correct ones
  per question and strategy, in the `siked grade` schema (`problem_id`, `strategy`, `solution`,
  plus `origin` and `sample_index`), each in its strategy's canonical form (least-to-most as
  `Sub-question k:` / `Answer to Sub-question k:` lines, whatever shape the teacher wrote);
- `teacher_samples.jsonl`: every sample with its verdict;
- `teacher_stats.json`: per-strategy solve rates, oracle coverage, the kept mix, the ledger;
- `teacher_completions.jsonl` (LLM teachers, unless `teacher.cache` points elsewhere): the
  durable completion log that makes reruns and resumes free.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from siked.config import SikedConfig, TeacherConfig
from siked.grading import Grader
from siked.io import write_json, write_jsonl
from siked.metrics import TeacherStats, TeacherStrategyStats
from siked.progress import make_progress
from siked.records import Problem, Solution, Verdict
from siked.registry import TEACHER_BACKENDS
from siked.sandbox import SandboxPool
from siked.strategies import get_strategy
from siked.teachers.base import Ledger, SolveContext, Teacher, TeacherError, cost
from siked.teachers.canonical import canonical_kept

TEACHER_FILE = "teacher.jsonl"
SAMPLES_FILE = "teacher_samples.jsonl"
STATS_FILE = "teacher_stats.json"
LOG_FILE = "teacher_completions.jsonl"
REFERENCE_NOTICE = (
    "reference teacher: these solutions are the dataset's own worked solutions rewritten in each "
    "strategy, not an LLM's"
)


def make_teacher(config: TeacherConfig) -> Teacher:
    """The backend registered as `config.backend` (`siked.registry.TEACHER_BACKENDS`)."""
    try:
        backend = TEACHER_BACKENDS[config.backend]
    except KeyError as exc:
        raise TeacherError(exc.args[0]) from None
    return backend(config)


@dataclass
class TeachResult:
    kept: list[Solution]
    samples: list[Solution]
    verdicts: list[Verdict]
    """Aligned with `samples`."""
    stats: dict[str, Any]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def teach(
    config: SikedConfig,
    problems: Sequence[Problem],
    out_dir: Path | str,
    *,
    console: Console | None = None,
    progress: bool = True,
    sandbox: Any = None,
) -> TeachResult:
    """Solve `problems` with the configured teacher, grade, keep the correct solutions, write files.

    `sandbox` is a started `SandboxPool` to grade programs in; None starts one from
    `config.sandbox` for the duration of the call.
    """
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher_config = config.teacher
    strategies = _check_strategies(teacher_config.strategies)
    gradable = [problem for problem in problems if problem.answer is not None]
    if not gradable:
        raise TeacherError(f"none of the {len(problems)} problems has a numeric gold answer to grade against")
    if len(gradable) < len(problems):
        console.print(f"teacher: {len(problems) - len(gradable)} problem(s) without a numeric gold answer skipped")

    teacher = make_teacher(teacher_config)
    context = SolveContext(
        strategies=strategies,
        samples=teacher_config.samples,
        log_path=teacher_config.cache or out_dir / LOG_FILE,
        say=lambda text: console.print(text, highlight=False),
    )
    timings: dict[str, float] = {}
    with make_progress(console, progress) as bars:
        context.progress = bars
        started = time.monotonic()
        with teacher:
            samples = teacher.solve(gradable, context)
        timings["solve"] = time.monotonic() - started
        started = time.monotonic()
        verdicts = _grade(config, gradable, samples, sandbox, bars)
        timings["grade"] = time.monotonic() - started

    kept = select_kept(samples, verdicts, teacher_config.keep_per_strategy)
    kept, canonical = canonical_kept(kept, samples, verdicts, gradable, Grader.from_config(config, None))
    stats = teacher_stats(
        teacher, teacher_config, gradable, strategies, samples, verdicts, kept, context.ledger, timings
    )
    stats.problems_without_numeric_gold = len(problems) - len(gradable)
    stats.canonical_form = canonical
    files = _write(out_dir, samples, verdicts, kept, stats, context.log_path if teacher.uses_llm else None)
    print_summary(console, stats, files)
    return TeachResult(kept=kept, samples=samples, verdicts=verdicts, stats=stats.dump(), out_dir=out_dir, files=files)


def _check_strategies(names: Sequence[str]) -> list[str]:
    if not names:
        raise TeacherError("teacher.strategies is empty: name at least one of cot, l2m, pot")
    for name in names:
        try:
            get_strategy(name)
        except KeyError as exc:
            raise TeacherError(str(exc.args[0])) from None
    if len(set(names)) != len(names):
        raise TeacherError(f"teacher.strategies repeats a strategy: {list(names)}")
    return list(names)


def _grade(
    config: SikedConfig, problems: Sequence[Problem], samples: Sequence[Solution], sandbox: Any, bars: Any
) -> list[Verdict]:
    by_id = {problem.id: problem for problem in problems}
    complete = [s for s in samples if not s.truncated]
    items = [(by_id[s.problem_id], s.strategy, s.solution) for s in complete]
    task = bars.add_task("grading", total=len(items))
    advance: Callable[[int], None] = lambda n: bars.advance(task, n)  # noqa: E731
    needs_sandbox = any(get_strategy(s.strategy).executes for s in complete)
    if sandbox is not None or not needs_sandbox:
        graded = Grader.from_config(config, sandbox).grade_many(items, progress=advance)
    else:
        with SandboxPool.from_config(config.sandbox) as pool:
            graded = Grader.from_config(config, pool).grade_many(items, progress=advance)
    return _with_truncated(samples, iter(graded))


def _with_truncated(samples: Sequence[Solution], graded: Iterator[Verdict]) -> list[Verdict]:
    """Verdicts aligned with `samples`: a sample cut by `teacher.max_tokens` is never correct, even
    when its last number matches the gold (it was not graded)."""
    return [
        Verdict(problem_id=s.problem_id, strategy=s.strategy, status="invalid", correct=False, truncated=True,
                detail="cut by teacher.max_tokens (finish_reason: length)")
        if s.truncated else next(graded)
        for s in samples
    ]


def select_kept(samples: Sequence[Solution], verdicts: Sequence[Verdict], keep: int) -> list[Solution]:
    """Per (question, strategy), the first `keep` distinct correct samples, in sample order."""
    kept: list[Solution] = []
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for sample, verdict in zip(samples, verdicts, strict=True):
        texts = seen[sample.problem_id, sample.strategy]
        if not verdict.correct or len(texts) >= keep:
            continue
        normalized = " ".join(sample.solution.split())
        if normalized in texts:
            continue
        texts.add(normalized)
        kept.append(sample)
    return kept


def teacher_stats(
    teacher: Teacher,
    config: TeacherConfig,
    problems: Sequence[Problem],
    strategies: Sequence[str],
    samples: Sequence[Solution],
    verdicts: Sequence[Verdict],
    kept: Sequence[Solution],
    ledger: Ledger,
    timings: dict[str, float],
) -> TeacherStats:
    questions = len(problems)
    solved: dict[str, set[str]] = {name: set() for name in strategies}
    sample_count: Counter[str] = Counter()
    correct_samples: Counter[str] = Counter()
    statuses: dict[str, Counter[str]] = {name: Counter() for name in strategies}
    for sample, verdict in zip(samples, verdicts, strict=True):
        sample_count[sample.strategy] += 1
        statuses[sample.strategy][verdict.status] += 1
        if verdict.correct:
            correct_samples[sample.strategy] += 1
            solved[sample.strategy].add(sample.problem_id)
    kept_count = Counter(solution.strategy for solution in kept)
    by_strategy = {}
    for name in strategies:
        by_strategy[name] = TeacherStrategyStats(
            attempted=questions,
            correct=len(solved[name]),
            kept=kept_count[name],
            solve_rate=len(solved[name]) / questions,
            samples=sample_count[name],
            correct_samples=correct_samples[name],
            sample_accuracy=correct_samples[name] / sample_count[name] if sample_count[name] else 0.0,
            statuses=dict(statuses[name]),
        )
    covered = set().union(*solved.values()) if solved else set()
    total = ledger.total()
    prices = teacher.prices
    stats = TeacherStats(
        backend=teacher.backend,
        model=teacher.model_name,
        origin=teacher.origin,
        reference_solutions=teacher.backend == "reference",
        problems=questions,
        strategies=list(strategies),
        samples_per_question=config.samples if teacher.uses_llm else None,
        keep_per_strategy=config.keep_per_strategy,
        by_strategy=by_strategy,
        oracle_coverage=len(covered) / questions,
        questions_solved=len(covered),
        kept=len(kept),
        kept_share={name: kept_count[name] / len(kept) if kept else 0.0 for name in strategies},
        requests=total.requests,
        failed_requests=total.failed_requests,
        retries=total.retries,
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        cached_completions=total.cached_completions,
        cost=cost(total, *prices),
        ledger=ledger.summary(*prices),
        seconds={name: round(value, 3) for name, value in timings.items()},
    )
    if teacher.uses_llm:
        stats.ledger_all_runs = teacher.log_ledger.summary(*prices)  # type: ignore[attr-defined]
    if teacher.backend == "reference":
        stats.notice = REFERENCE_NOTICE
    return stats


def _write(
    out_dir: Path,
    samples: Sequence[Solution],
    verdicts: Sequence[Verdict],
    kept: Sequence[Solution],
    stats: TeacherStats,
    log_path: Path | None,
) -> dict[str, Path]:
    files = {
        "teacher": out_dir / TEACHER_FILE,
        "samples": out_dir / SAMPLES_FILE,
        "stats": out_dir / STATS_FILE,
    }
    if log_path is not None:
        files["completions"] = Path(log_path)
    stats.files = {name: str(path) for name, path in files.items()}
    rows = (
        {
            **sample.model_dump(mode="json"),
            "status": verdict.status,
            "correct": verdict.correct,
            "predicted": verdict.predicted,
            "detail": verdict.detail,
        }
        for sample, verdict in zip(samples, verdicts, strict=True)
    )
    write_jsonl(files["samples"], rows)
    write_jsonl(files["teacher"], kept)
    write_json(files["stats"], stats.dump())
    return files


def print_summary(console: Console, stats: TeacherStats, files: dict[str, Path]) -> None:
    table = Table(title=f"teacher {stats.origin} on {stats.problems} questions")
    for column in ("strategy", "solved", "solve rate", "samples correct", "kept"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, row in stats.by_strategy.items():
        table.add_row(
            name, f"{row.correct}/{row.attempted}", f"{row.solve_rate:.1%}",
            f"{row.correct_samples}/{row.samples}", str(row.kept),
        )
    console.print(table)
    line = f"oracle coverage {stats.oracle_coverage:.1%}, kept {stats.kept} solutions"
    if stats.requests or stats.cached_completions:
        line += (
            f"; {stats.requests} requests ({stats.retries} retries, {stats.failed_requests} failed), "
            f"{stats.prompt_tokens} prompt + {stats.completion_tokens} completion tokens, "
            f"{stats.cached_completions} completions from the cache"
        )
    if stats.cost is not None:
        line += f", cost {stats.cost:.4f}"
    console.print(line, highlight=False)
    if stats.reference_solutions:
        console.print(f"[bold yellow]{REFERENCE_NOTICE}[/]")
    console.print(f"kept solutions: {files['teacher']}\nstats: {files['stats']}", highlight=False)
