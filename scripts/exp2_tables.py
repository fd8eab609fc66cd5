"""Every table of docs/results.md's experiment 2, from the committed run files.

    python scripts/exp2_tables.py [DIR] [--experiment exp2]   # DIR: docs/results (default)

Reads DIR/exp2-pilot/<draw>/ (each pilot, through scripts/exp2_pilot_report.py) and DIR/exp2/<run>-s<seed>/
(the runs of scripts/exp2.sh, packed by scripts/pack_run.py) and prints Markdown: the pilots; each
method's template-averaged held-out accuracy per seed with its t-interval over seeds and the hierarchical
bootstrap interval; the pre-registered primary and secondary differences the same way; per template;
the iteration validation chose, α and the solved share per iteration. A run not there yet is a dash.
`--experiment exp2-gpu` reads DIR/exp2-gpu-pilot/ and DIR/exp2-gpu/ instead (configs/exp2-gpu.yaml).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from siked.evaluation import natural_key
from siked.metrics import load_metrics
from siked.report.primary import (
    ModelAccuracy,
    PrimaryComparison,
    model_accuracy,
    primary_comparison,
)
from siked.report.templates import question_templates

TEST = "gsm_symbolic:test"
SCRIPTS = Path(__file__).resolve().parent
DASH = "—"


@dataclass(frozen=True)
class Arm:
    """A model as the tables name it: its runs (`<run>-s<seed>` folders) and its label in them."""

    name: str
    run: str
    label: str


ARMS = {arm.name: arm for arm in (
    Arm("SIKeD adaptive", "adaptive", "SIKeD unbiased adaptive (chosen)"),
    Arm("SIKeD adaptive, iteration 4", "adaptive", "SIKeD unbiased adaptive iteration 4"),
    Arm("SIKeD all", "all", "SIKeD unbiased all (chosen)"),
    Arm("teacher-only control", "control", "teacher-only control (unbiased) (chosen)"),
    Arm("combined", "adaptive", "combined"),
    Arm("cot", "cot", "cot"),
    Arm("l2m", "l2m", "l2m"),
    Arm("pot", "pot", "pot"),
    Arm("combined, equal steps", "combined-equal", "combined"),
)}
METHODS = ["SIKeD adaptive", "SIKeD all", "teacher-only control", "combined", "cot", "l2m", "pot",
           "combined, equal steps"]
# (comparison, method, reference, pool): pre-registered in docs/results.md, the primary first
DIFFERENCES = [
    ("primary: SIKeD adaptive − combined", "SIKeD adaptive", "combined", None),
    ("SIKeD all − combined", "SIKeD all", "combined", None),
    ("SIKeD adaptive − teacher-only control", "SIKeD adaptive", "teacher-only control", None),
    ("cot − combined", "cot", "combined", None),
    ("l2m − combined", "l2m", "combined", None),
    ("pot − combined", "pot", "combined", None),
    ("combined, equal steps − SIKeD adaptive", "combined, equal steps", "SIKeD adaptive", None),
    ("SIKeD adaptive − combined, PoT-complete templates", "SIKeD adaptive", "combined", "complete"),
    ("SIKeD adaptive − combined, PoT-incomplete templates", "SIKeD adaptive", "combined", "incomplete"),
    ("sensitivity: SIKeD adaptive at iteration 4 − combined", "SIKeD adaptive, iteration 4", "combined", None),
]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def runs_of(root: Path, run: str) -> list[Path]:
    """The `<run>-s<seed>` folders under `root` with a metrics.json, by seed."""
    found = [(int(m.group(1)), p) for p in root.glob(f"{run}-s*")
             if (m := re.fullmatch(rf"{re.escape(run)}-s(\d+)", p.name)) and (p / "metrics.json").is_file()]
    return [p for _, p in sorted(found)]


def pct(value: float | None, signed: bool = False) -> str:
    return DASH if value is None else f"{100 * value:{'+' if signed else ''}.1f}"


def interval(low: float | None, high: float | None, signed: bool = False) -> str:
    return DASH if low is None or high is None else f"[{pct(low, signed)}, {pct(high, signed)}]"


def pools(root: Path) -> dict[str, set[str]]:
    """The PoT-complete and PoT-incomplete templates among the held-out set's (the draw's rule)."""
    unteachable = {f"template {t}" for t in load_script("draw_templates").POT_UNTEACHABLE}
    adaptive = runs_of(root, "adaptive")
    held_out = set(question_templates(adaptive, TEST).values()) if adaptive else set()
    return {"complete": held_out - unteachable, "incomplete": held_out & unteachable}


HEADER = "| {} | seeds | per seed | mean | t-interval (seeds) | bootstrap (seeds, questions) |"


def result_row(title: str, result: ModelAccuracy | PrimaryComparison | None, signed: bool) -> str:
    """One row of the methods or the differences table; dashes where the runs are not there yet."""
    if result is None:
        return f"| {title} | 0 | {DASH} | {DASH} | {DASH} | {DASH} |"
    per_seed = ", ".join(f"{s}: {pct(v, signed)}" for s, v in zip(result.seed_keys, result.per_seed, strict=True))
    return (f"| {title} | {result.seeds} | {per_seed} | {pct(result.estimate, signed)} | "
            f"{interval(result.t_low, result.t_high, signed)} | {interval(result.low, result.high, signed)} |")


def methods_table(root: Path) -> list[str]:
    lines = [HEADER.format("method"), "|---|---|---|---|---|---|"]
    for name in METHODS:
        arm = ARMS[name]
        runs = runs_of(root, arm.run)
        try:
            result = model_accuracy(runs, arm.label, TEST) if runs else None
        except ValueError:
            result = None
        lines.append(result_row(name, result, signed=False))
    return lines


def differences_table(root: Path) -> list[str]:
    lines = [HEADER.format("comparison"), "|---|---|---|---|---|---|"]
    template_pools = pools(root)
    for title, method, reference, pool in DIFFERENCES:
        m, r = ARMS[method], ARMS[reference]
        try:
            result = primary_comparison(runs_of(root, m.run), m.label, r.label, TEST,
                                        reference_runs=runs_of(root, r.run),
                                        templates=template_pools[pool] if pool else None)
        except ValueError:
            result = None
        lines.append(result_row(title, result, signed=True))
    return lines


def templates_table(root: Path) -> list[str]:
    adaptive = runs_of(root, "adaptive")
    names = sorted(set(question_templates(adaptive, TEST).values()), key=natural_key) if adaptive else []
    if not names:
        return ["No SIKeD adaptive run with its held-out questions yet."]
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name in METHODS:
        arm = ARMS[name]
        runs = runs_of(root, arm.run)
        cells = []
        for template in names:
            try:
                cells.append(pct(model_accuracy(runs, arm.label, TEST, templates=[template]).estimate) if runs else DASH)
            except ValueError:
                cells.append(DASH)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def iterations_table(root: Path) -> list[str]:
    lines = ["| run | seed | chosen iteration | α per iteration | solved share per iteration |", "|---|---|---|---|---|"]
    for run in ("adaptive", "all", "control"):
        for path in runs_of(root, run):
            metrics = load_metrics(path)
            alphas = " → ".join(f"{it.train.alpha:.2f}" if it.train and it.train.alpha is not None else DASH
                                for it in metrics.iterations)
            solved = " → ".join(
                f"{it.student.solved_questions}/{it.student.questions}"
                if it.student and it.student.questions else DASH for it in metrics.iterations)
            lines.append(f"| {run} | {metrics.run.seed} | {metrics.best_iteration or DASH} | {alphas} | {solved} |")
    return lines


def main(results: Path, experiment: str = "exp2") -> None:
    pilot = load_script("exp2_pilot_report")
    out: list[str] = []
    for draw in sorted((results / f"{experiment}-pilot").glob("*/")):
        out += [f"## Pilot: {draw.name}", ""]
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            pilot.main(draw)
        out += [text.getvalue().rstrip(), ""]
    root = results / experiment
    out += ["## Held-out accuracy (template-averaged, %) per method", "", *methods_table(root), "",
            "## Differences (template-averaged points, paired by seed)", "", *differences_table(root), "",
            "## Per template (mean over seeds, %)", "", *templates_table(root), "",
            "## The loop per run", "", *iterations_table(root)]
    print("\n".join(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("docs/results"))
    parser.add_argument("--experiment", default="exp2", choices=["exp2", "exp2-gpu"],
                        help="exp2 (the CPU runs) or exp2-gpu (configs/exp2-gpu.yaml)")
    args = parser.parse_args()
    main(args.results, args.experiment)
