"""`siked compare` over seeds: means, paired differences and per-template accuracy read from the runs'
evaluation files, with hierarchical bootstrap intervals (seeds, then questions)."""

import re

import numpy as np
import pytest

from siked.io import write_jsonl
from siked.records import GradedSolution, Problem, Verdict
from siked.report import compare_runs
from siked.report.bootstrap import hierarchical_interval
from siked.rundir import eval_file
from test_report import TEST_SET, full_metrics, make_run

QUESTIONS = [f"q{i}" for i in range(10)]
INTERVAL = r"([\d.]+)% \[([\d.]+)–([\d.]+)\]"
DIFFERENCE = r"([+-][\d.]+) \[([+-][\d.]+) to ([+-][\d.]+)\]"


def write_eval(folder, dataset: str, correct_ids: set[str], questions=QUESTIONS) -> None:
    rows = [GradedSolution(problem_id=q, strategy="pot", solution="answer = 1",
                           verdict=Verdict(problem_id=q, strategy="pot", status="ok", correct=q in correct_ids))
            for q in questions]
    write_jsonl(eval_file(folder, dataset), rows)


def seeded_run(root, seed: int, iter2_correct: int, combined_correct: int):
    root.mkdir()
    metrics = full_metrics()
    metrics["run"]["seed"] = seed
    run_dir = make_run(root, metrics)
    for dataset in ("validation", TEST_SET):
        write_eval(run_dir / "iter1", dataset, set(QUESTIONS[:2]))
        write_eval(run_dir / "iter2", dataset, set(QUESTIONS[:iter2_correct]))
        write_eval(run_dir / "baselines" / "combined", dataset, set(QUESTIONS[:combined_correct]))
    return run_dir


def baseline_run(root, method: str, seed: int | None, correct: list[str], questions=QUESTIONS):
    """A run of one baseline (`run.method`) evaluated on the test set only."""
    root.mkdir(parents=True)
    eval_result = {"total": len(questions), "correct": len(correct), "accuracy": len(correct) / len(questions)}
    metrics = {"run": {"method": method, "seed": seed}, "iterations": [],
               "baselines": {method: {"eval": {TEST_SET: eval_result}}}}
    run_dir = make_run(root, metrics)
    write_eval(run_dir / "baselines" / method, TEST_SET, set(correct), questions)
    return run_dir


def row(markdown: str, section: str, label: str) -> list[str]:
    part = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in part.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def section_text(markdown: str, section: str) -> str:
    return markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]


def interval(cell: str) -> tuple[float, float, float]:
    return tuple(float(x) for x in re.match(INTERVAL, cell).groups())


def difference(cell: str) -> tuple[float, float, float]:
    return tuple(float(x) for x in re.fullmatch(DIFFERENCE, cell).groups())


def test_compare_averages_seeds_and_pairs_differences_by_seed(tmp_path):
    runs = [seeded_run(tmp_path / "s0", 0, iter2_correct=6, combined_correct=3),
            seeded_run(tmp_path / "s1", 1, iter2_correct=4, combined_correct=3)]
    markdown = compare_runs(runs)

    chosen = row(markdown, "Over seeds", "SIKeD adaptive (chosen)")  # best_iteration 2 in both runs
    assert chosen[1] == "2 seeds: 0, 1"
    assert chosen[3].startswith("50.0% [") and chosen[3].endswith("(60.0, 40.0)")
    assert row(markdown, "Over seeds", "combined")[3].startswith("30.0% [")
    assert row(markdown, "Over seeds", "SIKeD adaptive iteration 1")[3].startswith("20.0% [")
    # iteration 3 has no evaluation files here: its cells say so instead of inventing a number
    assert row(markdown, "Over seeds", "SIKeD adaptive iteration 3")[2:] == ["—", "—"]
    assert "hierarchical bootstrap" in section_text(markdown, "Over seeds")
    assert "Only one seed" not in markdown

    # seed 0: +3 questions over combined, seed 1: +1; paired by seed the mean is +20 points
    chosen_difference = row(markdown, "Difference from combined", "SIKeD adaptive (chosen)")
    assert chosen_difference[1] == "2 seeds: 0, 1"
    mean, low, high = difference(chosen_difference[3])
    assert mean == pytest.approx(20.0)
    assert 0.0 <= low < mean < high < 60.0
    assert row(markdown, "Difference from combined", "SIKeD adaptive iteration 1")[3].startswith("-10.0 [")


def test_compare_of_one_run_adds_no_seed_tables(tmp_path):
    markdown = compare_runs([seeded_run(tmp_path / "s0", 0, 6, 3)])
    assert "## Over seeds" not in markdown and "## Accuracy" in markdown


def test_hierarchical_interval_of_a_constant_is_that_constant_and_widens_with_spread():
    assert hierarchical_interval(np.full((3, 50), 0.3)) == pytest.approx((0.3, 0.3))
    low, high = hierarchical_interval(np.array([[0.0, 1.0] * 50]))
    assert 0.38 < low < 0.5 < high < 0.62  # one seed, normal approximation: 0.5 +- 1.96 * 0.05


def test_interval_widens_when_seeds_disagree(tmp_path):
    questions = [f"q{i}" for i in range(100)]
    agree = [baseline_run(tmp_path / "agree" / f"s{seed}", "cot", seed, questions[:70], questions)
             for seed in (0, 1)]
    spread = [baseline_run(tmp_path / "spread" / f"s{seed}", "cot", seed, questions[:correct], questions)
              for seed, correct in ((0, 50), (1, 90))]
    agree_mean, agree_low, agree_high = interval(row(compare_runs(agree), "Over seeds", "cot")[2])
    spread_mean, spread_low, spread_high = interval(row(compare_runs(spread), "Over seeds", "cot")[2])

    assert agree_mean == spread_mean == 70.0
    # questions alone: about +-6 points; drawing seeds too, the 50% and 90% seeds stretch it
    assert agree_high - agree_low < 16
    assert spread_high - spread_low > 2 * (agree_high - agree_low)
    assert spread_low < 55 and spread_high > 85


def test_runs_sharing_a_seed_are_repeats_not_seeds(tmp_path):
    first = baseline_run(tmp_path / "a", "cot", 0, QUESTIONS[:8])
    repeat = baseline_run(tmp_path / "b", "cot", 0, QUESTIONS[:2])
    markdown = compare_runs([first, repeat])

    cells = row(markdown, "Over seeds", "cot")
    assert cells[1] == "1 seed: 0; repeats: seed 0 ×2"
    assert "Only one seed: the intervals reflect the choice of questions only" in section_text(markdown, "Over seeds")
    # the repeats are averaged per question into one seed: q2-q7 count half
    low, high = hierarchical_interval(np.array([[1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0, 0]]))
    assert cells[2] == f"50.0% [{100 * low:.1f}–{100 * high:.1f}] (50.0)"
    # counted as two seeds (80% and 20%), the seed draw would stretch the interval far wider
    as_seeds = hierarchical_interval(np.array([[1.0] * 8 + [0.0] * 2, [1.0] * 2 + [0.0] * 8]))
    assert as_seeds[1] - as_seeds[0] > 1.5 * (high - low)

    third = baseline_run(tmp_path / "c", "cot", 1, QUESTIONS[:5])
    assert row(compare_runs([first, repeat, third]), "Over seeds", "cot")[1] == "2 seeds: 0, 1; repeats: seed 0 ×2"


def test_paired_difference_pairs_runs_by_seed(tmp_path):
    # seeds 0 and 1 disagree wildly (10-20% vs 90-100%), but within each seed cot beats combined by
    # exactly one question; the runs are given out of seed order
    runs = [baseline_run(tmp_path / "cot1", "cot", 1, QUESTIONS),
            baseline_run(tmp_path / "comb0", "combined", 0, QUESTIONS[:1]),
            baseline_run(tmp_path / "cot0", "cot", 0, QUESTIONS[:2]),
            baseline_run(tmp_path / "comb1", "combined", 1, QUESTIONS[:9])]
    cells = row(compare_runs(runs), "Difference from combined", "cot")
    assert cells[1] == "2 seeds: 0, 1"
    mean, low, high = difference(cells[2])
    assert mean == pytest.approx(10.0)
    # paired across seeds instead (-70 and +90 per pair) the interval would span 160 points
    assert 0.0 <= low and high <= 30.0


def test_paired_difference_leaves_out_seeds_only_one_side_has(tmp_path):
    runs = [baseline_run(tmp_path / "cot0", "cot", 0, []),
            baseline_run(tmp_path / "cot1", "cot", 1, QUESTIONS[:6]),
            baseline_run(tmp_path / "comb1", "combined", 1, QUESTIONS[:6]),
            baseline_run(tmp_path / "comb2", "combined", 2, QUESTIONS)]
    cells = row(compare_runs(runs), "Difference from combined", "cot")
    assert cells[1:] == ["1 seed: 1", "+0.0 [+0.0 to +0.0]"]


def write_templated_problems(run_dir, templates: dict[str, int]) -> None:
    problems = [Problem(id=q, question=f"question {q}", answer=1.0, answer_text="1", source="gsm_symbolic",
                        split="test", meta={"template": template}) for q, template in templates.items()]
    write_jsonl(run_dir / "data" / "eval-gsm_symbolic-test.jsonl", problems)


def test_template_averaged_mean_weighs_templates_alike(tmp_path):
    # template 2: q0-q7 (8 questions), template 10: q8, q9 (2 questions)
    templates = {q: 2 if i < 8 else 10 for i, q in enumerate(QUESTIONS)}
    seed0 = baseline_run(tmp_path / "s0", "cot", 0, [*QUESTIONS[:4], "q8", "q9"])  # 4/8 and 2/2
    seed1 = baseline_run(tmp_path / "s1", "cot", 1, QUESTIONS[:7])  # 7/8 and 0/2
    for run_dir in (seed0, seed1):
        write_templated_problems(run_dir, templates)
    markdown = compare_runs([seed0, seed1])

    part = section_text(markdown, "Per template")
    assert f"### {TEST_SET}" in part
    assert "| model | seeds | pooled | template-averaged | template 2 (n=8) | template 10 (n=2) |" in part
    cells = row(markdown, "Per template", "cot")
    # pooled: (6/10 + 7/10) / 2 = 65%; template-averaged: ((50 + 100) / 2 + (87.5 + 0) / 2) / 2 = 59.375%
    pooled, template_averaged = interval(cells[2]), interval(cells[3])
    assert pooled[0] == 65.0 and template_averaged[0] == pytest.approx(59.4)
    assert template_averaged[1] < template_averaged[0] < template_averaged[2]
    assert [float(c.rstrip("%")) for c in cells[4:]] == pytest.approx([68.8, 50.0])  # (50 + 87.5) / 2, (100 + 0) / 2
    assert row(markdown, "Over seeds", "cot")[2].startswith("65.0% [")


def test_sets_without_templates_get_no_template_table(tmp_path):
    runs = [seeded_run(tmp_path / "s0", 0, 6, 3), seeded_run(tmp_path / "s1", 1, 4, 3)]
    assert "## Per template" not in compare_runs(runs)  # no data files: every question under the set's name


def test_cli_compare_takes_the_reference_of_the_paired_differences(tmp_path):
    from typer.testing import CliRunner

    from siked.cli import app

    runs = [baseline_run(tmp_path / f"{method}{seed}", method, seed, QUESTIONS[:correct])
            for method, seed, correct in (("cot", 0, 4), ("cot", 1, 6), ("pot", 0, 7), ("pot", 1, 9))]
    out = tmp_path / "compare.md"
    result = CliRunner().invoke(app, ["compare", *map(str, runs), "--reference", "pot", "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = out.read_text(encoding="utf-8")
    assert "## Difference from combined" not in markdown
    assert difference(row(markdown, "Difference from pot", "cot")[2])[0] == pytest.approx(-30.0)


def test_runs_without_a_recorded_seed_each_stand_alone(tmp_path):
    runs = [baseline_run(tmp_path / "a", "cot", None, QUESTIONS[:2]),
            baseline_run(tmp_path / "b", "cot", None, QUESTIONS[:8]),
            baseline_run(tmp_path / "c", "cot", 3, QUESTIONS[:5])]
    cells = row(compare_runs(runs), "Over seeds", "cot")
    assert cells[1] == "3 seeds: 3; 2 runs without a recorded seed"
    assert cells[2].endswith("(50.0, 20.0, 80.0)")  # recorded seeds first, then the others by run directory
