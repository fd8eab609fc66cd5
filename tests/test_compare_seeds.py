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

    chosen = row(markdown, "Over seeds", "SIKeD unbiased adaptive (chosen)")  # best_iteration 2 in both runs
    assert chosen[1] == "2 seeds: 0, 1"
    assert chosen[3].startswith("50.0% [") and chosen[3].endswith("(60.0, 40.0)")
    assert row(markdown, "Over seeds", "combined")[3].startswith("30.0% [")
    assert row(markdown, "Over seeds", "SIKeD unbiased adaptive iteration 1")[3].startswith("20.0% [")
    # iteration 3 has no evaluation files here: its cells say so instead of inventing a number
    assert row(markdown, "Over seeds", "SIKeD unbiased adaptive iteration 3")[2:] == ["—", "—"]
    assert "hierarchical bootstrap" in section_text(markdown, "Over seeds")
    assert "Only one seed" not in markdown

    # seed 0: +3 questions over combined, seed 1: +1; paired by seed the mean is +20 points
    chosen_difference = row(markdown, "Difference from combined", "SIKeD unbiased adaptive (chosen)")
    assert chosen_difference[1] == "2 seeds: 0, 1"
    mean, low, high = difference(chosen_difference[3])
    assert mean == pytest.approx(20.0)
    assert 0.0 <= low < mean < high < 60.0
    assert row(markdown, "Difference from combined", "SIKeD unbiased adaptive iteration 1")[3].startswith("-10.0 [")


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


# template 1: q0-q29 (30 questions), template 2: q30-q39 (10 questions)
WIDE = [f"q{i}" for i in range(40)]
WIDE_TEMPLATES = {q: 1 if i < 30 else 2 for i, q in enumerate(WIDE)}


def templated_pair(root, correct: dict[tuple[str, int], list[str]], templates: dict[str, int],
                   questions=QUESTIONS) -> list:
    """Runs of cot and combined, one per (method, seed), with the set's problems and their templates."""
    runs = []
    for (method, seed), ids in correct.items():
        run_dir = baseline_run(root / f"{method}{seed}", method, seed, ids, questions)
        write_templated_problems(run_dir, templates)
        runs.append(run_dir)
    return runs


def test_template_averaged_difference_weighs_templates_alike(tmp_path):
    from siked.report.primary import primary_comparison

    # template 2: q0-q7 (8 questions), template 10: q8, q9 (2 questions)
    templates = {q: 2 if i < 8 else 10 for i, q in enumerate(QUESTIONS)}
    runs = templated_pair(tmp_path, {
        ("cot", 0): [*QUESTIONS[:6], "q8"],            # 6/8, 1/2
        ("combined", 0): QUESTIONS[:4],                # 4/8, 0/2: differences +2/8 and +1/2, 10 questions +3
        ("cot", 1): [*QUESTIONS[:4], "q8", "q9"],      # 4/8, 2/2
        ("combined", 1): [*QUESTIONS[:5], "q8"],       # 5/8, 1/2: differences -1/8 and +1/2, 10 questions 0
    }, templates)
    markdown = compare_runs(runs)

    part = section_text(markdown, "Difference from combined")
    assert f"| model | paired seeds | {TEST_SET} pooled | {TEST_SET} template-averaged |" in part
    assert "Template-averaged (sets made of several templates)" in part
    cells = row(markdown, "Difference from combined", "cot")
    assert cells[1] == "2 seeds: 0, 1"
    pooled, averaged = difference(cells[2]), difference(cells[3])
    # pooled: (+30 + 0) / 2 = +15; template-averaged: ((25 + 50) / 2 + (-12.5 + 50) / 2) / 2 = +28.125
    assert pooled[0] == pytest.approx(15.0)
    assert averaged[0] == pytest.approx(28.1)
    assert averaged[1] < averaged[0] < averaged[2]

    result = primary_comparison(runs, "cot", "combined", TEST_SET)
    assert result.estimate == pytest.approx(0.28125)
    assert result.low < result.estimate < result.high
    assert (result.seeds, result.repeats, result.templates, result.questions) == (2, 0, 2, 10)
    # the function's numbers are the table's
    assert f"{100 * result.estimate:+.1f} [{100 * result.low:+.1f} to {100 * result.high:+.1f}]" == cells[3]
    # the paired t-interval over seeds: per seed +0.375 and +0.1875, t(0.975, 1) = 12.706
    assert result.per_seed == pytest.approx((0.375, 0.1875))
    half = 12.706 * 0.1875 / 2 ** 0.5 / 2 ** 0.5  # sd of two values a, b is |a - b| / sqrt(2)
    assert (result.t_low, result.t_high) == pytest.approx((0.28125 - half, 0.28125 + half))


def test_template_averaged_difference_interval_widens_when_seeds_disagree(tmp_path):
    from siked.report.primary import primary_comparison

    combined = [*WIDE[:3], "q30"]  # 3/30 and 1/10 in every seed
    # agree: both seeds +15/30 and +5/10 over combined; spread: +27/30, +9/10 and +3/30, +1/10
    agree = templated_pair(tmp_path / "agree", {
        ("cot", 0): [*WIDE[:18], *WIDE[30:36]], ("cot", 1): [*WIDE[:18], *WIDE[30:36]],
        ("combined", 0): combined, ("combined", 1): combined}, WIDE_TEMPLATES, WIDE)
    spread = templated_pair(tmp_path / "spread", {
        ("cot", 0): WIDE, ("cot", 1): [*WIDE[:6], *WIDE[30:32]],
        ("combined", 0): combined, ("combined", 1): combined}, WIDE_TEMPLATES, WIDE)
    agreeing = primary_comparison(agree, "cot", "combined", TEST_SET)
    spreading = primary_comparison(spread, "cot", "combined", TEST_SET)

    assert agreeing.estimate == pytest.approx(0.5) and spreading.estimate == pytest.approx(0.5)
    for result in (agreeing, spreading):
        assert result.low < result.estimate < result.high
    assert spreading.high - spreading.low > 2 * (agreeing.high - agreeing.low)
    assert spreading.low < 0.2 and spreading.high > 0.8  # the seed draw reaches the +10 and +90 seeds

    # a repeat of seed 0 is averaged into it, not counted as a third seed
    repeat = templated_pair(tmp_path / "repeat", {("cot", 0): WIDE}, WIDE_TEMPLATES, WIDE)
    with_repeat = primary_comparison([*spread, *repeat], "cot", "combined", TEST_SET)
    assert (with_repeat.seeds, with_repeat.repeats) == (2, 1)
    assert with_repeat.estimate == pytest.approx(0.5)


def test_sets_without_templates_get_no_template_averaged_difference(tmp_path):
    from siked.report.primary import primary_comparison

    # no copy of the set's problems: every question counts under the set's name
    runs = [seeded_run(tmp_path / "s0", 0, 6, 3), seeded_run(tmp_path / "s1", 1, 4, 3)]
    markdown = compare_runs(runs)
    part = section_text(markdown, "Difference from combined")
    assert "template-averaged" not in part.lower()
    assert "| model | paired seeds | validation | gsm_symbolic:test |" in part
    assert len(row(markdown, "Difference from combined", "SIKeD unbiased adaptive (chosen)")) == 4
    with pytest.raises(ValueError, match="several templates"):
        primary_comparison(runs, "SIKeD unbiased adaptive (chosen)", "combined", TEST_SET)

    # problems without a generator template, all from one source: one group, nothing to average over
    single = [baseline_run(tmp_path / f"{method}{seed}", method, seed, QUESTIONS[:correct])
              for method, seed, correct in (("cot", 0, 4), ("cot", 1, 6), ("combined", 0, 3), ("combined", 1, 3))]
    for run_dir in single:
        problems = [Problem(id=q, question=f"question {q}", answer=1.0, answer_text="1", source="gsm_symbolic",
                            split="test") for q in QUESTIONS]
        write_jsonl(run_dir / "data" / "eval-gsm_symbolic-test.jsonl", problems)
    markdown = compare_runs(single)
    assert "template-averaged" not in section_text(markdown, "Difference from combined").lower()
    cells = row(markdown, "Difference from combined", "cot")
    assert len(cells) == 3 and difference(cells[2])[0] == pytest.approx(20.0)  # (+10 + 30) / 2


def test_primary_comparison_names_what_is_missing(tmp_path):
    from siked.report.primary import primary_comparison

    runs = templated_pair(tmp_path, {("cot", 0): QUESTIONS[:4], ("combined", 1): QUESTIONS[:2]},
                          {q: 2 if i < 8 else 10 for i, q in enumerate(QUESTIONS)})
    with pytest.raises(ValueError, match="'pot'"):
        primary_comparison(runs, "pot", "combined", TEST_SET)
    with pytest.raises(ValueError, match="share no seed"):
        primary_comparison(runs, "cot", "combined", TEST_SET)


def test_t_quantiles_match_the_table_and_its_expansion():
    from siked.report.bootstrap import seed_t_interval, t_quantile_975

    assert t_quantile_975(1) == 12.706 and t_quantile_975(2) == 4.303 and t_quantile_975(30) == 2.042
    assert t_quantile_975(40) == pytest.approx(2.021, abs=1e-3) and t_quantile_975(120) == pytest.approx(1.980, abs=1e-3)
    assert seed_t_interval([0.1]) is None
    low, high = seed_t_interval([0.0, 0.1, 0.2])
    assert (low, high) == pytest.approx((0.1 - 4.303 * 0.1 / 3 ** 0.5, 0.1 + 4.303 * 0.1 / 3 ** 0.5))


def test_pools_of_templates_runs_of_a_shared_label_and_one_models_accuracy(tmp_path):
    from siked.report.primary import model_accuracy, primary_comparison

    templates = {q: 1 if i < 4 else 2 if i < 8 else 3 for i, q in enumerate(QUESTIONS)}
    cot = templated_pair(tmp_path / "cot", {
        ("cot", 0): ["q0", "q1", "q2", "q3", "q4", "q8"],  # templates 1, 2, 3: 4/4, 1/4, 1/2
        ("cot", 1): ["q0", "q1", "q4", "q5", "q8", "q9"],  # 2/4, 2/4, 2/2
    }, templates)
    short = templated_pair(tmp_path / "short", {("combined", 0): ["q0", "q1"], ("combined", 1): ["q0", "q1"]},
                           templates)  # 2/4, 0/4, 0/2 in both seeds
    long = templated_pair(tmp_path / "long", {("combined", 0): QUESTIONS[:8], ("combined", 1): QUESTIONS[:8]},
                          templates)  # 4/4, 4/4, 0/2 in both seeds

    accuracy = model_accuracy(cot, "cot", TEST_SET)
    assert accuracy.per_seed == pytest.approx((7 / 12, 8 / 12)) and accuracy.estimate == pytest.approx(0.625)
    assert (accuracy.seeds, accuracy.templates, accuracy.questions) == (2, 3, 10)
    assert accuracy.t_low < accuracy.estimate < accuracy.t_high and accuracy.low < accuracy.estimate < accuracy.high
    pool = model_accuracy(cot, "cot", TEST_SET, templates=["template 3"])
    assert pool.per_seed == pytest.approx((0.5, 1.0)) and pool.templates == 1

    # a pool of templates: per seed (+2/4 + 1/4) / 2 and (0 + 2/4) / 2
    pooled = primary_comparison([*cot, *short], "cot", "combined", TEST_SET, templates={"template 1", "template 2"})
    assert pooled.per_seed == pytest.approx((0.375, 0.25)) and (pooled.templates, pooled.questions) == (2, 8)
    # the reference from other runs: the long combined runs only, not averaged with the short ones
    against_long = primary_comparison(cot, "cot", "combined", TEST_SET, reference_runs=long)
    assert against_long.per_seed == pytest.approx((-1 / 12, 0.0)) and against_long.repeats == 0
    mixed = primary_comparison([*cot, *short, *long], "cot", "combined", TEST_SET)
    assert mixed.repeats == 2  # what reference_runs avoids: the two combined runs of a seed averaged
    with pytest.raises(ValueError, match="no question of the set comes from template 9"):
        primary_comparison([*cot, *short], "cot", "combined", TEST_SET, templates=["template 9"])
    with pytest.raises(ValueError, match="no question of the set comes from an empty pool"):
        model_accuracy(cot, "cot", TEST_SET, templates=[])
