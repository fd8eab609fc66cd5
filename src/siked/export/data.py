"""`siked export data`: the run's teacher data and training mixes as a `datasets` folder.

    OUT/README.md                     dataset card (YAML metadata: configs, licence, tags)
    OUT/teacher/train.parquet         kept teacher solutions (what the student learns from)
    OUT/teacher_samples/train.parquet every graded teacher sample, correct or not
    OUT/mix/iterN.parquet             the training mix of iteration N (teacher and student rows)

`datasets.load_dataset(OUT, "teacher")` (or "teacher_samples", "mix") reads them. Every row has
`prompt`/`completion` (TRL's prompt-completion form), `messages` (the conversational form) and
the columns problem_id, question, gold_answer, strategy, source (teacher / student), origin,
verdict (the grader's status), correct and iteration.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siked.export.common import ExportError, RunArtifacts, output_folder, yaml_header
from siked.names import ModelName
from siked.records import Solution, Verdict
from siked.strategies.format import student_instruction, student_prompt, student_target

VerdictKey = tuple[str, str, int]


@dataclass
class DataExport:
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per file (relative path)."""
    seconds: float = 0.0


def row(solution: Solution, artifacts: RunArtifacts, verdict: Verdict | None, iteration: int | None,
        where: str) -> dict[str, Any]:
    problem = artifacts.problems.get(solution.problem_id)
    if problem is None:
        raise ExportError(f"{artifacts.path / where}: problem {solution.problem_id!r} is not among the "
                          f"run's questions ({artifacts.path / 'data'})")
    style, taught = artifacts.config.student.prompt_style, artifacts.config.teacher.strategies
    # The chat style renders the user turn with the student's chat template; `messages` holds it unrendered.
    prompt = (student_prompt(problem.question, strategies=taught) if style == "alpaca"
              else user_turn(problem.question, taught))
    completion = student_target(solution.strategy, solution.solution)
    return {
        "prompt": prompt,
        "completion": completion,
        "messages": [{"role": "user", "content": user_turn(problem.question, taught)},
                     {"role": "assistant", "content": completion}],
        "problem_id": solution.problem_id,
        "question": problem.question,
        "gold_answer": problem.answer_text,
        "strategy": solution.strategy,
        "source": "student" if solution.origin.startswith("student") else "teacher",
        "origin": solution.origin,
        "verdict": verdict.status if verdict else None,
        "correct": verdict.correct if verdict else None,
        "iteration": iteration,
    }


def user_turn(question: str, strategies: Sequence[str]) -> str:
    return f"{student_instruction(strategies)}\n\n{question.strip()}"


def verdict_index(solutions: Sequence[Solution], verdicts: Sequence[Verdict]) -> dict[VerdictKey, Verdict]:
    """Verdicts by (problem id, strategy, sample index); the two files are aligned line by line."""
    return {(s.problem_id, s.strategy, s.sample_index): v for s, v in zip(solutions, verdicts, strict=False)}


def teacher_verdicts(artifacts: RunArtifacts) -> tuple[list[Solution], dict[VerdictKey, Verdict]]:
    """Every graded teacher sample (teacher_samples.jsonl holds solution and verdict fields)."""
    samples = artifacts.path / "teacher" / "teacher_samples.jsonl"
    if not samples.is_file():
        return [], {}
    solutions = artifacts.records("teacher/teacher_samples.jsonl", Solution)
    verdicts = artifacts.records("teacher/teacher_samples.jsonl", Verdict)
    return solutions, verdict_index(solutions, verdicts)


def student_verdicts(artifacts: RunArtifacts) -> dict[ModelName, dict[VerdictKey, Verdict]]:
    """Per iteration that sampled: its samples' verdicts."""
    found = {}
    for name in artifacts.iterations():
        if (artifacts.path / str(name) / "sample_verdicts.jsonl").is_file():
            solutions = artifacts.records(f"{name}/samples.jsonl", Solution)
            found[name] = verdict_index(solutions, artifacts.records(f"{name}/sample_verdicts.jsonl", Verdict))
    return found


def export_tables(artifacts: RunArtifacts) -> dict[str, list[dict[str, Any]]]:
    """Relative parquet path -> rows."""
    samples, by_key = teacher_verdicts(artifacts)
    kept = artifacts.records("teacher/teacher.jsonl", Solution)
    if not kept:
        raise ExportError(f"{artifacts.path / 'teacher' / 'teacher.jsonl'} holds no kept teacher solutions")
    key = lambda s: (s.problem_id, s.strategy, s.sample_index)  # noqa: E731
    tables = {"teacher/train.parquet": [row(s, artifacts, by_key.get(key(s)), None, f"teacher/teacher.jsonl row {i}")
                                        for i, s in enumerate(kept, 1)]}
    if samples:
        tables["teacher_samples/train.parquet"] = [
            row(s, artifacts, by_key[key(s)], None, f"teacher/teacher_samples.jsonl row {i}")
            for i, s in enumerate(samples, 1)]
    sampled = student_verdicts(artifacts)
    for name in artifacts.iterations():
        number = name.iteration or 0
        previous = sampled.get(ModelName(iteration=number - 1), {}) if number > 1 else {}
        mixed = artifacts.records(f"{name}/train.jsonl", Solution)
        tables[f"mix/{name}.parquet"] = [
            row(s, artifacts, (previous if s.origin.startswith("student") else by_key).get(key(s)), number,
                f"{name}/train.jsonl row {i}")
            for i, s in enumerate(mixed, 1)
        ]
    return tables


def export_data(run_dir: Path | str, out: Path | str) -> DataExport:
    """Write the run's teacher data and training mixes under `out` (a new folder)."""
    from datasets import Dataset

    started = time.perf_counter()
    artifacts = RunArtifacts.open(run_dir)
    tables = export_tables(artifacts)
    result = DataExport(out=Path(out))
    with output_folder(Path(out)) as staging:
        for relative, rows in tables.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            if rows:
                Dataset.from_list(rows).to_parquet(str(staging / relative))
            result.rows[relative] = len(rows)
        (staging / "README.md").write_text(dataset_card(artifacts, result.rows), encoding="utf-8")
    result.seconds = time.perf_counter() - started
    return result


def card_configs(rows: dict[str, int]) -> list[dict[str, Any]]:
    configs: dict[str, list[dict[str, str]]] = {}
    for relative, count in rows.items():
        if count:
            config, split = relative.removesuffix(".parquet").split("/")
            configs.setdefault(config, []).append({"split": split, "path": relative})
    return [{"config_name": name, "data_files": files, **({"default": True} if name == "teacher" else {})}
            for name, files in configs.items()]


def dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def dataset_card(artifacts: RunArtifacts, rows: dict[str, int]) -> str:
    config, stats = artifacts.config, artifacts.teacher_stats
    licenses = artifacts.data_licenses()
    known = sorted({v for v in licenses.values() if v != "unknown"})
    header = yaml_header({
        "license": known[0] if len(known) == 1 else "other",
        "task_categories": ["text-generation"],
        "language": ["en"],
        "tags": ["math", "reasoning", "distillation", "siked"],
        "pretty_name": f"SIKeD teacher data and training mixes ({artifacts.path.name})",
        "size_categories": ["n<1K" if rows.get("teacher/train.parquet", 0) < 1000 else "1K<n<10K"],
        "configs": card_configs(rows),
    })
    teacher = config.teacher
    lines = [
        header,
        f"# SIKeD data of run `{artifacts.path.name}`\n",
        "Teacher solutions and per-iteration training mixes of a SIKeD run (self-guided iterative "
        "knowledge distillation for math reasoning), written by `siked export data`.\n",
        "## Teacher\n",
        f"- backend: `{teacher.backend}`, model: `{stats.model or teacher.model_name}`",
        f"- strategies: {', '.join(teacher.strategies)}; {teacher.samples} sample(s) per question and strategy "
        f"at temperature {teacher.temperature}, top-p {teacher.top_p}, up to {teacher.max_tokens} tokens",
    ]
    if stats.notice:
        lines.append(f"- note: {stats.notice}")
    lines += [
        "\n## Prompts\n",
        f"The student prompt style is `{config.student.prompt_style}`; the instruction is:\n",
        f"> {student_instruction(teacher.strategies)}\n",
        "Targets start with the strategy tag, e.g. `[cot]: ...`, `[l2m]: ...`, `[pot]: ...` (a Python "
        "program that stores its result in `answer`).\n",
        "## Filter\n",
        "A teacher sample is kept when its answer equals the gold answer (programs are executed in a "
        f"sandbox); at most {teacher.keep_per_strategy} kept per question and strategy. "
        "`teacher_samples` holds every graded sample with its verdict.\n",
        "## Solve rates\n",
        "| strategy | questions | solved | solve rate | sample accuracy |", "|---|---|---|---|---|",
    ]
    for name, block in stats.by_strategy.items():
        lines.append(f"| {name} | {dash(block.attempted)} | {dash(block.correct)} | "
                     f"{block.solve_rate or 0:.1%} | {block.sample_accuracy or 0:.1%} |")
    lines += [
        "\n## Training mixes\n",
        f"Mixing: `{config.mixing.mode}` on the {config.mixing.line} line. Config `mix`, split `iterN`: the "
        "data iteration N trained on (`source` tells teacher from student rows).\n",
        "| iteration | rows | teacher | student |", "|---|---|---|---|",
    ]
    for relative, count in rows.items():
        if relative.startswith("mix/"):
            sources = artifacts.path / relative.removeprefix("mix/").removesuffix(".parquet") / "train.jsonl"
            student = sum(1 for s in artifacts.records(str(sources.relative_to(artifacts.path)), Solution)
                          if s.origin.startswith("student"))
            lines.append(f"| {relative[4:-8]} | {count} | {count - student} | {student} |")
    lines += [
        "\n## Source data and licences\n",
        *(f"- `{name}`: {lic}" for name, lic in licenses.items()),
        "",
        "```python\nfrom datasets import load_dataset\nteacher = load_dataset(PATH_OR_REPO, \"teacher\", "
        "split=\"train\")\nmix = load_dataset(PATH_OR_REPO, \"mix\")\n```\n",
    ]
    return "\n".join(lines)
