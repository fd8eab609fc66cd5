"""How the reported model fails: a few of its wrong answers per strategy it chose, read from its stored
evaluation outputs (`<model folder>/eval/<set>.jsonl`, one graded greedy solution per question) and the
run's copy of the set's questions. Nothing is generated again.

The set is the first evaluation set that is not validation (validation where the run has no other);
the examples are the first wrong answers by problem id, so a report written twice shows the same ones.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from siked.errors import SikedError, one_line
from siked.evaluation import natural_key
from siked.io import jsonl_source, read_jsonl
from siked.metrics import VALIDATION
from siked.records import GradedSolution, Problem
from siked.report.document import MISSING, Block, Code, Fields, Section, Subheading
from siked.report.templates import problem_file
from siked.report.view import RunView, model_folder, ordered_strategies
from siked.rundir import eval_file
from siked.strategies import get_strategy, strategy_names

EXAMPLES_PER_STRATEGY = 3
SOLUTION_MAX_LINES = 25
SOLUTION_MAX_CHARS = 1500
DETAIL_MAX_CHARS = 300
"""Of a verdict's detail (a program's error can be long)."""
TITLE = "Wrong answers"


def shorten(text: str, max_lines: int = SOLUTION_MAX_LINES, max_chars: int = SOLUTION_MAX_CHARS) -> tuple[str, bool]:
    """`text` cut to a readable length, and whether it was cut."""
    text = text.rstrip()
    kept = "\n".join(text.split("\n")[:max_lines])[:max_chars]
    return kept, len(kept) < len(text)


def clip(text: str, max_chars: int = DETAIL_MAX_CHARS) -> str:
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " …"


def reported_set(view: RunView) -> str | None:
    """The first set the best model was evaluated on that is not validation (else validation)."""
    names = [name for name in view.datasets if view.best is not None and name in view.best.eval]
    return next((name for name in names if name != VALIDATION), names[0] if names else None)


def model_name(view: RunView, iteration: int) -> str:
    """The reported model, as the section names it: `iteration 2`, or a lone baseline's chosen step."""
    method = view.metrics.run.method or "siked"
    if method == "siked":
        return f"iteration {iteration}"
    baseline = view.metrics.baselines.get(method)
    step = baseline.chosen_step if baseline else None
    return f"`{method}` at step {step}" if step is not None else f"`{method}`"


def read_outputs(view: RunView, iteration: int, dataset: str) -> tuple[list[GradedSolution] | None, str]:
    """Iteration `iteration`'s graded outputs on `dataset` and their path in the run; (None, why) when
    they cannot be read."""
    path = eval_file(model_folder(view.run_dir, view.metrics, iteration), dataset)
    shown = str(path.relative_to(view.run_dir))
    if not jsonl_source(path).is_file():
        return None, f"`{shown}` is not in the run directory"
    try:
        return read_jsonl(path, GradedSolution), shown
    except (SikedError, OSError) as exc:
        return None, f"`{shown}` cannot be read ({one_line(exc)})"


def read_questions(run_dir: Path, dataset: str) -> dict[str, Problem]:
    """Problem id -> problem from the run's copy of the set ({}: the copy is missing or unreadable)."""
    path = problem_file(run_dir, dataset)
    try:
        return {p.id: p for p in read_jsonl(path, Problem)} if jsonl_source(path).is_file() else {}
    except (SikedError, OSError):
        return {}


def extracted(row: GradedSolution) -> str:
    verdict = row.verdict
    if verdict.predicted_text is not None:
        return verdict.predicted_text
    if verdict.predicted is not None:
        return f"{verdict.predicted:g}"
    return "none extracted"


def example_blocks(row: GradedSolution, problem: Problem | None) -> list[Block]:
    verdict = row.verdict
    status = f"{verdict.status} ({clip(verdict.detail)})" if verdict.detail else verdict.status
    blocks: list[Block] = [Fields([
        ("Problem", row.problem_id),
        ("Question", problem.question if problem else MISSING),
        ("Gold answer", problem.answer_text if problem else MISSING),
        ("Extracted answer", extracted(row)),
        ("Answer status", status),
        ("Hit the token limit", "yes" if verdict.truncated or row.truncated else "no"),
    ])]
    if not row.solution.strip():
        return [*blocks, "The student wrote nothing."]
    text, cut = shorten(row.solution)
    executes = row.strategy in strategy_names() and get_strategy(row.strategy).executes
    blocks.append(Code(text, "python" if executes else "text"))
    if cut:
        blocks.append(shortened_note(text, row.solution.rstrip()))
    return blocks


def shortened_note(shown: str, full: str) -> str:
    shown_lines, full_lines = len(shown.split("\n")), len(full.split("\n"))
    return (f"Solution shortened for this report: {shown_lines} of its {full_lines} lines "
            f"({len(shown):,} of {len(full):,} characters) are shown.")


def strategy_blocks(strategy: str, wrong: list[GradedSolution], chosen: int,
                    questions: dict[str, Problem]) -> list[Block]:
    shown = wrong[:EXAMPLES_PER_STRATEGY]
    heading = f"`{strategy}`: {len(wrong)} wrong of {chosen} chosen"
    if len(shown) < len(wrong):
        heading += f", the first {len(shown)} shown"
    blocks: list[Block] = [Subheading(heading)]
    for row in shown:
        blocks += example_blocks(row, questions.get(row.problem_id))
    return blocks


def wrong_by_strategy(rows: list[GradedSolution]) -> dict[str, list[GradedSolution]]:
    """Strategy chosen -> its wrong answers, by problem id."""
    by_strategy: dict[str, list[GradedSolution]] = defaultdict(list)
    for row in sorted(rows, key=lambda row: natural_key(row.problem_id)):
        if not row.verdict.correct:
            by_strategy[row.verdict.strategy].append(row)
    return by_strategy


def failures_section(view: RunView) -> Section:
    """Up to `EXAMPLES_PER_STRATEGY` wrong answers of the best model per strategy it chose, on one set."""
    dataset = reported_set(view)
    if view.best is None or dataset is None:
        return Section(TITLE, ["No evaluated best model yet."])
    name = model_name(view, view.best.iteration)
    title = f"{TITLE} ({name}, `{dataset}`)"
    rows, path = read_outputs(view, view.best.iteration, dataset)
    if rows is None:
        return Section(title, [f"No per-question outputs of {name} on `{dataset}` to show wrong answers from: {path}."])
    by_strategy = wrong_by_strategy(rows)
    wrong = sum(len(group) for group in by_strategy.values())
    if not wrong:
        return Section(title, [f"Every answer of {name} on `{dataset}` is right ({len(rows)}/{len(rows)}): "
                               "there is no wrong answer to show."])
    chosen = {strategy: sum(row.verdict.strategy == strategy for row in rows) for strategy in by_strategy}
    questions = read_questions(view.run_dir, dataset)
    blocks: list[Block] = [
        f"How the student fails: {wrong} of its {len(rows)} answers on `{dataset}` are wrong. Per strategy it "
        f"chose, up to {EXAMPLES_PER_STRATEGY} of them (the first by problem id), as the run stored them in `{path}`: "
        "the student's greedy solution, the answer read from it, and whether generation hit the token limit.",
    ]
    if not questions:
        blocks.append(f"The run's copy of the questions (`{problem_file(view.run_dir, dataset).relative_to(view.run_dir)}`) "
                      "is missing, so questions and gold answers are not shown.")
    for strategy in ordered_strategies(by_strategy):
        blocks += strategy_blocks(strategy, by_strategy[strategy], chosen[strategy], questions)
    return Section(title, blocks)
