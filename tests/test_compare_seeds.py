"""`siked compare` over seeds: means and paired differences read from the runs' evaluation files."""

import re

import pytest

from siked.io import write_jsonl
from siked.records import GradedSolution, Verdict
from siked.report import compare_runs
from siked.report.seeds import bootstrap_interval
from siked.rundir import eval_file
from test_report import TEST_SET, full_metrics, make_run

QUESTIONS = [f"q{i}" for i in range(10)]


def write_eval(folder, dataset: str, correct_ids: set[str]) -> None:
    rows = [GradedSolution(problem_id=q, strategy="pot", solution="answer = 1",
                           verdict=Verdict(problem_id=q, strategy="pot", status="ok", correct=q in correct_ids))
            for q in QUESTIONS]
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


def row(markdown: str, section: str, label: str) -> list[str]:
    part = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    line = next(line for line in part.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_compare_averages_seeds_and_pairs_differences_by_question(tmp_path):
    runs = [seeded_run(tmp_path / "s0", 0, iter2_correct=6, combined_correct=3),
            seeded_run(tmp_path / "s1", 1, iter2_correct=4, combined_correct=3)]
    markdown = compare_runs(runs)

    chosen = row(markdown, "Over seeds", "SIKeD adaptive (chosen)")  # best_iteration 2 in both runs
    assert chosen[1] == "0, 1"
    assert chosen[3].startswith("50.0% [") and chosen[3].endswith("(60.0, 40.0)")
    assert row(markdown, "Over seeds", "combined")[3].startswith("30.0% [")
    assert row(markdown, "Over seeds", "SIKeD adaptive iteration 1")[3].startswith("20.0% [")
    # iteration 3 has no evaluation files here: its cells say so instead of inventing a number
    assert row(markdown, "Over seeds", "SIKeD adaptive iteration 3")[2:] == ["—", "—"]

    # per question, averaged over seeds: iteration 2 beats combined on q3 (+1), q4 and q5 (+0.5 each)
    difference = row(markdown, "Difference from combined", "SIKeD adaptive (chosen)")[2]
    mean, low, high = (float(x) for x in re.fullmatch(r"([+-][\d.]+) \[([+-][\d.]+) to ([+-][\d.]+)\]",
                                                      difference).groups())
    assert mean == pytest.approx(20.0)
    assert 0.0 <= low < mean < high < 60.0
    assert row(markdown, "Difference from combined", "SIKeD adaptive iteration 1")[2].startswith("-10.0 [")


def test_compare_of_one_seed_adds_no_seed_tables(tmp_path):
    markdown = compare_runs([seeded_run(tmp_path / "s0", 0, 6, 3)])
    assert "## Over seeds" not in markdown and "## Accuracy" in markdown


def test_bootstrap_interval_of_a_constant_is_that_constant_and_widens_with_spread():
    import numpy as np

    assert bootstrap_interval(np.full(50, 0.3)) == pytest.approx((0.3, 0.3))
    low, high = bootstrap_interval(np.array([0.0, 1.0] * 50))
    assert 0.38 < low < 0.5 < high < 0.62  # normal approximation: 0.5 +- 1.96 * 0.05


def test_compare_lists_alpha_solved_share_kl_and_routing_per_iteration(tmp_path):
    markdown = compare_runs([seeded_run(tmp_path / "s0", 0, 6, 3)])
    second = row(markdown, "Per iteration", "run | 2")  # run label "run", iteration 2
    assert second[2:5] == ["0.55", "65 + 54", "cot 33.6% · l2m 31.9% · pot 34.5%"]
    assert second[7:] == ["22/50", "0.100", "cot 4/13 · l2m 2/6 · pot 7/11"]
    routing = row(markdown, "Routing", "run | 2")
    assert routing[1:] == ["2", TEST_SET, "40.6% (13/32)", "cot 31.2% · l2m 25.0% · pot 37.5%", "—", "50.0%"]
