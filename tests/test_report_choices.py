"""The report's strategy choice per template: each iteration's choices read from the evaluation files the
run stored (graded by the real grader, programs run in the sandbox), against the routing pass's oracle."""

from __future__ import annotations

import gzip
from pathlib import Path

from siked.report import write_report
from test_report import TEST_SET, full_metrics, make_run, section
from test_report_failures import store_evaluation

TITLE = "Strategy choice per template"
# number: (question, gold, completion, cut); template = number % 3
ITERATION_2 = {
    1: ("One and one?", 2, "[cot]: 1 + 1 = 2. The answer is 2.", False),
    2: ("Three?", 3, "[pot]: answer = 3", False),
    3: ("Four?", 4, "[pot]: answer = 4", False),
    4: ("Five?", 5, "[cot]: The answer is 5.", False),
    5: ("Six?", 6, "[cot]: The answer is 6.", False),
    6: ("Seven?", 7, "[pot]: answer = 8", False),
}
SOLVED_BY = {1: ["cot"], 2: ["cot", "pot"], 3: ["pot"], 4: ["cot", "l2m"], 5: ["pot"], 6: []}
"""Which forced strategies are right per question (the routing pass's per_question)."""


def routed_metrics() -> dict:
    metrics = full_metrics()
    def group(forced: dict[str, float], best: str) -> dict:
        return {"questions": 2, "forced_accuracy": forced, "best_single_strategy": best,
                "best_single_accuracy": forced[best]}

    metrics["routing"][TEST_SET].update(
        per_question={f"gsm_symbolic/test/{n}": s for n, s in SOLVED_BY.items()},
        by_template={"template 0": group({"cot": 0.0, "l2m": 0.0, "pot": 0.5}, "pot"),
                     "template 1": group({"cot": 1.0, "l2m": 0.5, "pot": 0.0}, "cot"),
                     "template 2": group({"cot": 0.5, "l2m": 0.0, "pot": 0.5}, "cot")})
    return metrics


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in section(markdown, TITLE).splitlines() if line.startswith("| template")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_choices_per_template_and_iteration_against_the_oracle(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, routed_metrics())
    store_evaluation(run_dir, "iter1", {n: (q, gold, "[cot]: The answer is 0.", False)
                                        for n, (q, gold, _, _) in ITERATION_2.items()})
    store_evaluation(run_dir, "iter2", ITERATION_2)
    markdown = write_report(run_dir)[0].read_text(encoding="utf-8")
    assert "| Template | Questions | Iteration 1 | Iteration 2 ★ | Oracle's pick (forced accuracy) |" in markdown
    # iteration 2 is the chosen one: its pick is right on 1 of 1 (template 0: question 6 nothing solves),
    # 2 of 2 and 1 of 2 (question 5: it chose cot, only pot is right)
    assert table_rows(markdown) == [
        ["template 0", "2", "cot 100%", "pot 100%", "pot (50.0%)", "100.0%"],
        ["template 1", "2", "cot 100%", "cot 100%", "cot (100.0%)", "100.0%"],
        ["template 2", "2", "cot 100%", "pot 50% · cot 50%", "cot = pot (50.0%)", "50.0%"],
    ]
    assert "Not shown: `iter3/eval/gsm_symbolic-test.jsonl` is not in the run directory." in markdown
    assert (run_dir / "plots" / "template_choice.png").stat().st_size > 5000

    # a run packed for committing (scripts/pack_run.py: JSONL compressed) reads the same
    for plain in [*run_dir.glob("iter*/eval/*.jsonl"), *run_dir.glob("data/*.jsonl")]:
        plain.with_name(plain.name + ".gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    assert table_rows(write_report(run_dir)[0].read_text(encoding="utf-8")) == table_rows(markdown)


def test_no_section_without_a_routed_set_of_several_templates(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, full_metrics())  # routing without per-template figures
    assert f"## {TITLE}" not in write_report(run_dir)[0].read_text(encoding="utf-8")
