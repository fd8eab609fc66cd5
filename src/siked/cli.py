"""The `siked` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from siked.config import DatasetSpec, SikedConfig, dump_config, load_config
from siked.config_teacher import BACKEND_SECTIONS
from siked.data import load_problems, load_spec, parse_data_spec
from siked.envcheck import check_torch_companions
from siked.errors import SikedError
from siked.evaluation import run_overview, summarize
from siked.export import export_data, export_model, push_folder
from siked.grading import Grader
from siked.io import read_jsonl_numbered, write_jsonl
from siked.lifeline import sigterm_interrupts
from siked.loop import run as run_loop
from siked.metrics import NO_STRATEGY, EvalResult
from siked.plugins import load_plugins
from siked.predictions import (
    RUN_CONFIG,
    differences_from_run,
    prediction_rows,
    run_evaluation_sets,
    spec_key,
)
from siked.progress import make_progress
from siked.ranks import is_main_process
from siked.records import Prediction, Solution
from siked.sandbox import SandboxPool
from siked.strategies import FREE, strategy_names
from siked.student import Student, read_examples, train_student
from siked.student.decode import evaluate_model, grade_student_outputs
from siked.teachers import teach as run_teach

console = Console(stderr=True)


class Commands(TyperGroup):
    """Runs the commands; any `SikedError` ends here, once: one line on stderr, exit status 2."""
    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except SikedError as exc:
            fail(str(exc))


app = typer.Typer(
    cls=Commands,
    help="SIKeD: self-guided iterative knowledge distillation for math reasoning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="YAML config file; omitted: the embedded default (offline, small)."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field, e.g. --set teacher.samples=4 (repeatable)."),
]


def fail(message: str, code: int = 2) -> None:
    """Print a clear error (no traceback) and exit."""
    console.print("[bold red]error:[/]", end=" ")
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def config_from(path: Path | None, overrides: list[str] | None) -> SikedConfig:
    return load_config(path, overrides or [])


@app.callback()
def cli() -> None:
    # An explicit callback keeps `siked COMMAND` a group; without it Typer runs a lone command as the app.
    quiet_libraries()
    load_plugins()  # the installed entry points, for commands that read no config (a config adds its own)


def quiet_libraries() -> None:
    """siked shows its own progress per stage; the libraries' tqdm bars (loading weights, dataset
    maps, saving shards) only clutter it. Set before those libraries are imported; a user's own
    setting of the variables wins."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers follows it too
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@app.command("config")
def show_config(
    config: ConfigArg = None,
    overrides: SetOption = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema of every field, described, instead.")] = False,
) -> None:
    """Print the config a command line resolves to (CONFIG or the embedded default, then each --set) as YAML."""
    if schema:
        typer.echo(json.dumps(SikedConfig.model_json_schema(), indent=2))
        return
    typer.echo(dump_config(config_from(config, overrides)), nl=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding metrics.json and config.yaml.")],
) -> None:
    """Write RUN_DIR/report.md (plots in RUN_DIR/plots/) and a self-contained RUN_DIR/report.html."""
    from siked.report import write_report  # imports matplotlib: only when asked

    md_path, html_path = write_report(run_dir)
    typer.echo(md_path)
    typer.echo(html_path)


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories, each holding metrics.json.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the Markdown here instead of printing it.")] = None,
    reference: Annotated[str, typer.Option(
        "--reference", help="Model the paired differences over seeds are taken from (a baseline's method or a "
        "SIKeD label).")] = "combined",
) -> None:
    """Several runs side by side: accuracy with 95% intervals, training budget, strategy choices; over
    seeds, means and paired differences with hierarchical bootstrap intervals (seeds, then questions),
    and accuracy per template."""
    from siked.report import compare_runs  # imports matplotlib: only when asked

    markdown = compare_runs(run_dirs, reference=reference)
    if out is None:
        typer.echo(markdown)
    else:
        out.write_text(markdown, encoding="utf-8")
        typer.echo(out)


DataFileOption = Annotated[
    Path | None,
    typer.Option("--data-file", help="Raw file of the original release (or a local hub snapshot)."),
]


def load_dataset_arg(spec: str, data_file: Path | None, limit: int | None = None) -> list:
    """Problems of `NAME:SPLIT`, with a clean error for anything a user can get wrong."""
    name, split = parse_data_spec(spec)
    return load_problems(name, split, data_file=data_file, limit=limit)


@app.command()
def data(
    spec: Annotated[str, typer.Argument(metavar="NAME:SPLIT", help="Dataset and split, e.g. gsm8k:test.")],
    data_file: DataFileOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Keep the first N problems.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Load a dataset split: print the count, how many golds are numeric, and one example.

    Datasets: gsm8k, gsm8k_socratic, svamp, asdiv, multiarith, gsm_symbolic (offline), jsonl.
    """
    problems = load_dataset_arg(spec, data_file, limit)
    numeric = sum(p.numeric_gold for p in problems)
    example = problems[0].model_dump(mode="json") if problems else None
    if as_json:
        typer.echo(json.dumps({"count": len(problems), "numeric_gold": numeric, "example": example}))
        return
    out = Console()
    out.print(f"[bold]{spec}[/]: {len(problems)} problems, {numeric} with a numeric gold answer")
    if example:
        out.print_json(data=example)


def read_solution_file(path: Path, problems: dict) -> list:
    """The solutions of a `siked grade` file; every unknown id or strategy is reported by line."""
    rows = read_jsonl_numbered(path, Solution)

    known = {*strategy_names(), NO_STRATEGY}  # "none": an untagged student output, graded invalid
    errors = []
    for lineno, row in rows:
        if row.problem_id not in problems:
            errors.append(f"{path}:{lineno}: unknown problem_id {row.problem_id!r}")
        if row.strategy not in known:
            errors.append(f"{path}:{lineno}: unknown strategy {row.strategy!r} (known: {', '.join(sorted(known))})")
    if errors:
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        fail(f"{len(errors)} bad row(s) in {path}, nothing graded:\n  " + "\n  ".join(errors[:20]) + more)
    if not rows:
        fail(f"{path} holds no solutions")
    return [row for _, row in rows]


@app.command()
def grade(
    solutions: Annotated[Path, typer.Argument(help='JSON Lines: {"problem_id", "strategy", "solution"} per line.')],
    data_spec: Annotated[str, typer.Option("--data", metavar="NAME:SPLIT", help="Dataset holding the gold answers.")],
    data_file: DataFileOption = None,
    out: Annotated[Path | None, typer.Option(help="Write one verdict per line here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    config: Annotated[Path | None, typer.Option(help="Config file (sandbox and grading sections).")] = None,
    overrides: SetOption = None,
) -> None:
    """Grade solutions against a dataset's gold answers; PoT programs run in the sandbox."""
    cfg = config_from(config, overrides)
    problems = {p.id: p for p in load_dataset_arg(data_spec, data_file)}
    rows = read_solution_file(solutions, problems)
    with SandboxPool.from_config(cfg.sandbox) as sandbox, make_progress(console) as progress:
        task = progress.add_task("grading", total=len(rows))
        verdicts = grade_student_outputs(
            Grader.from_config(cfg, sandbox), problems, rows, progress=lambda n: progress.advance(task, n)
        )
        progress.update(task, completed=len(rows))
    if out is not None:
        write_jsonl(out, verdicts)
    summary = summarize(verdicts)
    summary.pop("strategy_distribution")
    if as_json:
        typer.echo(json.dumps(summary))
        return
    print_grade_summary(summary)


def print_grade_summary(summary: dict) -> None:
    result = EvalResult.read(summary)
    table = Table(title=f"accuracy {result.rate or 0.0:.1%} ({result.correct}/{result.total})")
    for column in ("strategy", "total", "correct", "accuracy"):
        table.add_column(column)
    for name, block in result.by_strategy.items():
        table.add_row(name, str(block.total), str(block.correct), f"{block.rate or 0.0:.1%}")
    out = Console()
    out.print(table)
    out.print("status: " + ", ".join(f"{k} {v}" for k, v in result.by_status.items()))


@app.command()
def teach(
    config: ConfigArg = None,
    overrides: SetOption = None,
    data_spec: Annotated[
        str | None, typer.Option("--data", metavar="NAME:SPLIT", help="Training questions (default: the config's data.train).")
    ] = None,
    data_file: DataFileOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Solve the first N questions.")] = None,
    teacher: Annotated[str | None, typer.Option("--teacher", help="Backend: openai, vllm, hf, file or reference.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Teacher model (served name, hub id or path).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="K samples per question and strategy.")] = None,
    strategies: Annotated[str | None, typer.Option("--strategies", help="Comma-separated strategies, e.g. cot,l2m,pot.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default: <config out>/teacher).")] = None,
) -> None:
    """Solve training questions with the teacher (K samples per strategy), grade them, keep the correct ones.

    Writes OUT/teacher.jsonl (kept solutions, in the `siked grade` schema) and OUT/teacher_stats.json.

    LLM completions are appended durably to OUT/teacher_completions.jsonl.
    Rerunning, or resuming after a crash, sends only the requests that never succeeded.
    """


    cfg = config_from(config, overrides)
    flags = {"backend": teacher, "samples": samples}
    if strategies is not None:
        flags["strategies"] = [name.strip() for name in strategies.split(",") if name.strip()]
    try:
        for field, value in flags.items():
            if value is not None:
                setattr(cfg.teacher, field, value)
    except ValidationError as exc:
        fail(f"invalid teacher option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    if base_url is not None:
        cfg.teacher.openai.base_url = base_url
    if model is not None:
        set_teacher_model(cfg, model)
    spec_update: dict = {}
    if data_spec is not None:
        name, split = parse_data_spec(data_spec)
        spec_update.update(name=name, split=split, file=None, limit=None, templates=None)
    if data_file is not None:
        spec_update["file"] = data_file
    if limit is not None:
        spec_update["limit"] = limit
    problems = load_spec(cfg.data.train.model_copy(update=spec_update))
    result = run_teach(cfg, problems, out or cfg.out / "teacher", console=console)
    typer.echo(result.files["teacher"])


def set_teacher_model(cfg: SikedConfig, model: str) -> None:
    """`siked teach --model`: the model of the backend's own settings (a registered one's `options`)."""
    teacher = cfg.teacher
    section = BACKEND_SECTIONS.get(teacher.backend, "options")
    if section in ("openai", "local"):
        getattr(teacher, section).model = model
    elif section == "options":
        teacher.options = {**teacher.options, "model": model}
    else:
        fail(f"--model: the {teacher.backend} teacher runs no model")


@app.command()
def run(
    config: ConfigArg = None,
    overrides: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: the config's `out`).")] = None,
) -> None:
    """Run SIKeD end to end: teacher data, iterations of train / evaluate / sample / mix, baselines, report.

    With no config it runs the embedded default offline (gsm_symbolic, reference teacher, SmolLM2).
    Rerunning the same command resumes at the first unfinished stage. One `siked run` at a time
    writes a run directory: it holds RUN/run.lock while it runs, and a second one is refused with the
    holder's pid, host and start time. Its stage processes stop with it, even when it is killed.
    """
    check_torch_companions()
    cfg = config_from(config, (overrides or []) + ([f"out={out}"] if out else []))
    with sigterm_interrupts():
        run_dir = run_loop(cfg, console)
    typer.echo(run_dir)


@app.command("eval")
def evaluate(
    target: Annotated[Path, typer.Argument(metavar="MODEL_OR_RUN", help="Model (hub id, dir, GGUF) or run directory.")],
    data_specs: Annotated[list[str] | None, typer.Option("--data", metavar="NAME:SPLIT", help="Evaluation set (repeatable); for a run, default: the run's own sets.")] = None,
    data_files: Annotated[list[Path] | None, typer.Option("--data-file", help="Raw file for each --data, in order.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Keep the first N problems of each set.")] = None,
    with_routing: Annotated[bool, typer.Option("--routing", help="Also force each strategy the model was taught: per-question routing and the oracle.")] = False,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE.jsonl", help="Write one prediction per question here.")] = None,
    overview: Annotated[bool, typer.Option("--overview", help="For a run: print its per-iteration metrics instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: Annotated[Path | None, typer.Option(help="Config file (generation, sandbox, grading); for a run, default: its config.yaml.")] = None,
    overrides: SetOption = None,
) -> None:
    """Greedy evaluation: accuracy per dataset and per chosen strategy, strategy choices, statuses.

    For a run directory it evaluates the run's chosen model with the run's config. Without --data it
    re-evaluates exactly the run's own evaluation sets (data.evaluation, read from RUN/data/); a
    --data is evaluated as given, with a warning when the run drew that set differently (templates,
    limit, file). --overview prints the run's per-iteration metrics (strategy distributions of teacher
    data, training mix and student; KL(train || student)) without evaluating.

    --out writes one JSON line per question: set, question, gold, strategy, solution, extracted
    answer, verdict (correct, status, detail) and truncated (free choice only, not --routing's).
    """
    files = list(data_files or [])
    if len(files) > len(data_specs or []):
        fail("more --data-file than --data options")
    is_run = (target / "manifest.json").exists()
    if is_run and overview:
        summary = run_overview(target)
        typer.echo(json.dumps(summary, indent=2)) if as_json else print_overview(summary)
        return
    if not is_run and not data_specs:
        fail("give at least one --data NAME:SPLIT to evaluate a model")
    model = run_model(target) if is_run else target
    run_config = target / RUN_CONFIG if is_run and (target / RUN_CONFIG).is_file() else None
    cfg = load_config(config or run_config, overrides or [], recorded=config is None and run_config is not None)
    asked = [DatasetSpec(name=name, split=split, file=files[i] if i < len(files) else None, limit=limit)
             for i, (name, split) in enumerate(parse_data_spec(spec) for spec in data_specs or [])]
    if is_run and not asked:
        sets = run_evaluation_sets(target, limit)
    else:
        for line in differences_from_run(target, asked) if is_run else []:
            console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
        sets = {spec_key(spec): load_spec(spec) for spec in asked}
    rows: list[Prediction] = []
    results = evaluate_model(str(model), sets, cfg, routing_too=with_routing, console=console,
                             on_graded=lambda *graded: rows.extend(prediction_rows(*graded)))
    if out is not None:
        write_jsonl(out, rows)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for key, summary in results.items():
        console.print(f"[bold]{key}[/]")
        print_grade_summary(summary)
    if out is not None:
        typer.echo(out)


def run_model(run_dir: Path) -> Path:
    """The model a run chose (its best iteration)."""
    best = run_overview(run_dir)["best_model"]
    if not best:
        fail(f"{run_dir}: the run has chosen no model yet (no evaluated iteration); rerun `siked run` to finish it")
    return run_dir / best


def print_overview(overview: dict) -> None:
    table = Table(title=f"run {overview['run']} (best: {overview['best_model']})")
    for column in ("iteration", "alpha", "teacher data", "training mix", "student", "KL(train||student)", "validation"):
        table.add_column(column)
    share = lambda d: ", ".join(f"{k} {v:.0%}" for k, v in (d or {}).items())  # noqa: E731
    for row in overview["iterations"]:
        table.add_row(str(row["iteration"]), f"{row['alpha']:.2f}", share(overview["teacher"]), share(row["train"]),
                      share(row["student"]), f"{row['kl']:.3f}" if row["kl"] is not None else "-",
                      f"{row['validation']:.1%}" if row["validation"] is not None else "-")
    Console().print(table)


def apply_flags(section: object, flags: dict) -> None:
    """Set the given (non-None) command-line values on a config section, validated."""
    for field, value in flags.items():
        if value is None:
            continue
        try:
            setattr(section, field, value)
        except ValidationError as exc:
            fail(f"invalid --{field.replace('_', '-')} {value!r}: {exc.errors()[0]['msg']}")


@app.command()
def train(
    config: ConfigArg = None,
    overrides: SetOption = None,
    model: Annotated[str | None, typer.Option("--model", help="Base model: hub id, directory, .gguf or embedded:smollm2 (default: student.model).")] = None,
    data_path: Annotated[Path, typer.Option("--data", metavar="FILE.jsonl", help="Solutions to learn (the `siked grade` / teacher.jsonl schema).")] = ...,
    out: Annotated[Path, typer.Option("--out", help="Output directory (adapter or model, manifest, log).")] = ...,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Training epochs (default: train.epochs).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after S optimizer steps.")] = None,
    previous: Annotated[Path | None, typer.Option("--previous", help="Last iteration's output directory (used with init=previous).")] = None,
    init: Annotated[str | None, typer.Option("--init", help="previous: merge --previous and train a new LoRA on top; base: start from --model.")] = None,
    full_finetune: Annotated[bool | None, typer.Option("--full-finetune/--lora", help="Train all weights instead of a LoRA.")] = None,
    questions: Annotated[str | None, typer.Option("--questions", metavar="NAME:SPLIT", help="Questions for records without a `question` field.")] = None,
    questions_file: Annotated[Path | None, typer.Option("--questions-file", help="Raw file for --questions.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fine-tune the student (LoRA by default) on tagged solutions: FILE.jsonl -> OUT.

    Shows a progress bar and the loss log; prints steps, loss and tokens/s. Also runs under
    `accelerate launch -m siked.cli train ...` for multi-GPU training (docs/multi-gpu.md).
    Rerunning after an interruption resumes from the newest checkpoint in OUT.
    """
    check_torch_companions()
    cfg = config_from(config, overrides)
    apply_flags(cfg.student, {"model": model})
    apply_flags(cfg.train, {"epochs": epochs, "max_steps": max_steps, "init": init, "full_finetune": full_finetune})
    problems = load_dataset_arg(questions, questions_file) if questions else None
    if questions_file is not None and not questions:
        fail("--questions-file needs --questions NAME:SPLIT (the loader that reads it)")
    examples = read_examples(data_path, problems)
    result = train_student(examples, cfg, out, previous=previous, console=console)
    if not is_main_process():  # under accelerate launch / torchrun only the main process reports
        return
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    first, last = (result.losses[0], result.losses[-1]) if result.losses else (float("nan"),) * 2
    console.print(
        f"trained {len(examples)} examples, {result.steps} steps: loss {first:.3f} -> {last:.3f} "
        f"(mean {result.train_loss:.3f}), {result.tokens_per_s:,.0f} tokens/s, "
        f"peak memory {result.peak_memory_mb:,.0f} MiB; log: {out / 'train_log.jsonl'}"
    )
    typer.echo(out)


@app.command()
def sample(
    config: ConfigArg = None,
    overrides: SetOption = None,
    model: Annotated[str | None, typer.Option("--model", help="Trained output directory, hub id, directory or .gguf (default: student.model).")] = None,
    data_spec: Annotated[str, typer.Option("--data", metavar="NAME:SPLIT", help="Questions to solve, e.g. gsm8k:test.")] = ...,
    data_file: DataFileOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Solve the first N questions.")] = None,
    samples: Annotated[int | None, typer.Option("--samples", min=1, help="Samples per question (default: generation.samples).")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="free (the student picks) or a strategy to force: cot, l2m, pot.")] = FREE,
    greedy: Annotated[bool, typer.Option("--greedy", help="One greedy answer per question.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Solutions JSONL (the `siked grade` schema, plus `question`).")] = ...,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sample the student's solutions, grade them, and count them per strategy.

    Writes OUT (one solution per line; an untagged completion has strategy "none") and the
    verdicts beside it (OUT with suffix .verdicts.jsonl); prints accuracy per chosen strategy,
    the strategy-choice distribution and the generation throughput.
    """
    cfg = config_from(config, overrides)
    if strategy != FREE and strategy not in strategy_names():
        fail(f"--strategy {strategy!r}: expected free or one of {', '.join(strategy_names())}")
    if greedy and samples not in (None, 1):
        fail("--greedy writes one answer per question: leave out --samples")
    problems = load_dataset_arg(data_spec, data_file, limit)
    if not problems:
        fail(f"{data_spec}: no questions to solve")
    with Student.load(model or cfg.student.model, cfg, console=console) as student:
        run = student.generate(problems, mode=strategy, n=samples, greedy=greedy)
    questions = {p.id: p.question for p in problems}
    write_jsonl(out, [{**s.model_dump(mode="json"), "question": questions[s.problem_id]} for s in run.solutions])
    by_id = {p.id: p for p in problems}
    with SandboxPool.from_config(cfg.sandbox) as sandbox:
        verdicts = grade_student_outputs(Grader.from_config(cfg, sandbox), by_id, run.solutions)
    verdicts_path = out.with_suffix(".verdicts.jsonl")
    write_jsonl(verdicts_path, verdicts)
    summary = summarize(verdicts)
    summary.update(questions=len(problems), solved_questions=len({v.problem_id for v in verdicts if v.correct}),
                   generated_tokens=run.generated_tokens, tokens_per_s=run.tokens_per_s,
                   out=str(out), verdicts=str(verdicts_path))
    if as_json:
        typer.echo(json.dumps(summary))
        return
    print_grade_summary(summary)
    choices = ", ".join(f"{name} {share:.0%}" for name, share in EvalResult.read(summary).strategy_distribution.items())
    console.print(f"strategy choices: {choices}")
    console.print(f"solved {summary['solved_questions']}/{len(problems)} questions; "
                  f"{run.generated_tokens:,} tokens at {run.tokens_per_s:,.1f} tokens/s")
    typer.echo(out)


export_app = typer.Typer(help="Share a run: teacher data and mixes as datasets, the student as a model.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")
RunDirArg = Annotated[Path, typer.Argument(metavar="RUN", help="Run directory of `siked run`.")]
OutOption = Annotated[Path, typer.Option("--out", help="New folder to write (must not exist or be empty).")]
PushOption = Annotated[
    str | None, typer.Option("--push-to-hub", metavar="OWNER/NAME", help="Also upload it to this Hub repo (HF_ENDPOINT, HF_TOKEN).")
]


def push_export(folder: Path, repo: str | None, repo_type: str) -> None:
    if repo is None:
        return

    url = push_folder(folder, repo, repo_type)  # type: ignore[arg-type]
    console.print(f"pushed to {url}", soft_wrap=True)


@export_app.command("data")
def export_data_command(run_dir: RunDirArg, out: OutOption, push_to_hub: PushOption = None) -> None:
    """Kept teacher solutions and each iteration's training mix as a `datasets` folder with a card."""
    result = export_data(run_dir, out)
    rows = ", ".join(f"{path} {count}" for path, count in result.rows.items())
    console.print(f"exported {rows} rows in {result.seconds:.1f} s", soft_wrap=True)
    push_export(result.out, push_to_hub, "dataset")
    typer.echo(result.out)


@export_app.command("model")
def export_model_command(
    run_dir: RunDirArg,
    out: OutOption,
    iteration: Annotated[str, typer.Option("--iteration", metavar="N|best", help="Iteration to export.")] = "best",
    merge: Annotated[bool, typer.Option("--merge", help="Fold the LoRA into the weights (a plain model folder).")] = False,
    push_to_hub: PushOption = None,
) -> None:
    """One iteration's student as a transformers folder (adapter or merged weights) with a model card."""
    result = export_model(run_dir, out, iteration=iteration, merge=merge)
    console.print(f"exported {result.iteration} ({result.kind}) in {result.seconds:.1f} s", soft_wrap=True)
    push_export(result.out, push_to_hub, "model")
    typer.echo(result.out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
