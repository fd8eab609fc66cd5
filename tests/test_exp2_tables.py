"""scripts/exp2_tables.py: docs/results.md's experiment-2 tables from packed run folders, numbers as
`siked.report.primary` computes them, a dash where a run is not there yet."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from conftest import load_script
from siked.report.primary import primary_comparison
from test_compare_seeds import QUESTIONS, baseline_run, seeded_run, write_templated_problems

TEMPLATES = {q: 4 if i < 5 else 12 for i, q in enumerate(QUESTIONS)}  # 4: PoT-incomplete, 12: complete


def tables(results: Path) -> str:
    module = load_script("exp2_tables")
    out = io.StringIO()
    with redirect_stdout(out):
        module.main(results)
    return out.getvalue()


def row(text: str, first: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def placed(run_dir: Path, target: Path) -> Path:
    """The helpers' run folder moved to where scripts/exp2.sh puts it (`exp2/<run>-s<seed>`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.move(run_dir, target))


def test_tables_from_packed_runs(tmp_path: Path) -> None:
    root, made = tmp_path / "exp2", tmp_path / "made"
    made.mkdir()
    adaptive = [placed(seeded_run(made / "a0", 0, iter2_correct=6, combined_correct=3), root / "adaptive-s0"),
                placed(seeded_run(made / "a1", 1, iter2_correct=4, combined_correct=3), root / "adaptive-s1")]
    cot = [placed(baseline_run(made / "c0", "cot", 0, QUESTIONS[:7]), root / "cot-s0"),
           placed(baseline_run(made / "c1", "cot", 1, QUESTIONS[:2]), root / "cot-s1")]
    for run in [*adaptive, *cot]:
        write_templated_problems(run, TEMPLATES)
    text = tables(tmp_path)

    expected = primary_comparison(adaptive, "SIKeD unbiased adaptive (chosen)", "combined")
    # seed 0: +2/5 on template 4 and +1/5 on 12; seed 1: +1/5 and 0. t(0.975, 1) = 12.706, sd 0.1414
    assert expected.per_seed == pytest.approx((0.3, 0.1))
    assert row(text, "primary: SIKeD adaptive − combined")[1:5] == ["2", "0: +30.0, 1: +10.0", "+20.0",
                                                                   "[-107.1, +147.1]"]
    assert row(text, "SIKeD adaptive − combined, PoT-incomplete templates")[1:3] == ["2", "0: +40.0, 1: +20.0"]
    assert row(text, "SIKeD adaptive − combined, PoT-complete templates")[1:3] == ["2", "0: +20.0, 1: +0.0"]
    # cot-s0: 5/5 and 2/5; cot-s1: 2/5 and 0/5; combined (inside the adaptive runs) 3/5 and 0/5 in both
    assert row(text, "cot")[1:4] == ["2", "0: 70.0, 1: 20.0", "45.0"]
    assert row(text, "cot − combined")[1:4] == ["2", "0: +40.0, 1: -10.0", "+15.0"]
    assert row(text, "SIKeD all") == ["SIKeD all", "0", "—", "—", "—", "—"]
    assert row(text, "SIKeD all − combined")[1:] == ["0", "—", "—", "—", "—"]
    assert "| method | template 4 | template 12 |" in text
    assert "| cot | 70.0 | 20.0 |" in text  # per template, the mean over seeds
    loop_rows = [line for line in text.splitlines() if line.startswith("| adaptive |")]
    assert loop_rows == ["| adaptive | 0 | 2 | 1.00 → 0.55 → 0.40 | 21/50 → 22/50 → 23/50 |",
                         "| adaptive | 1 | 2 | 1.00 → 0.55 → 0.40 | 21/50 → 22/50 → 23/50 |"]
