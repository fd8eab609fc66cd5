"""The report's wrong answers of the best model: read from the evaluation files the run stored, written
here as the evaluate stage writes them (the student's raw completions parsed, graded by the real grader
with programs run in the sandbox), with the questions from the run's copy of the set."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from siked.evaluation import natural_key
from siked.grading import Grader
from siked.io import read_jsonl, write_jsonl
from siked.records import GradedSolution, Problem
from siked.report import write_report
from siked.report.failures import EXAMPLES_PER_STRATEGY, SOLUTION_MAX_LINES
from siked.report.markdown import md_text
from siked.report.templates import problem_file
from siked.rundir import eval_file
from siked.sandbox import SandboxPool
from siked.strategies import FREE
from siked.student.decode import grade_student_outputs
from siked.student.generate import to_solution
from test_report import TEST_SET, full_metrics, make_run, section

TITLE = "Wrong answers"
SCRIPT_QUESTION = "Tom has <script>alert(1)</script> 3 apples & buys 4 *more*. How many apples?"
LONG_COT = "[cot]: " + "\n".join(f"Step {i}: 1 + 1 = 2." for i in range(1, 41)) + "\nThe answer is 2."
# (question, gold, the student's raw completion, cut by the token limit)
QUESTIONS = {
    1: (SCRIPT_QUESTION, 7, "[cot]: Tom has 3 + 4 = 7 apples. The answer is 8.", False),
    2: ("Ann reads 5 pages a day for 3 days. How many pages?", 15, "[cot]: 5 * 3 = 15. The answer is 15.", False),
    3: ("A box holds 6 eggs. How many eggs in 4 boxes?", 24,
        "[pot]: eggs_per_box = 6\nboxes = 4\nanswer = eggs_per_box + boxes", False),
    4: ("Sam had 10 dollars and spent 4. How many are left?", 6, "[cot]: 10 - 4 = 5. The answer is 5.", False),
    5: ("A car drives 60 km an hour for 2 hours. How far?", 120, LONG_COT, True),
    6: ("Mia buys 2 toys at $4 each and pays $8. How many dollars does she pay?", 8, "I think she pays 8.", False),
    7: ("Joe bakes 3 pies of 8 slices. How many slices?", 24, "[pot]: answer = 3 * 8", False),
    10: ("Lea earns $4 an hour for 5 hours. How much does she earn?", 20, "[cot]: 4 * 5 = 9. The answer is 9.", False),
    11: ("A bus has 30 seats and 12 are taken. How many are free?", 18, "[cot]: 30 - 12 = 17. The answer is 17.",
         False),
}


def problem(number: int, question: str, gold: int) -> Problem:
    return Problem(id=f"gsm_symbolic/test/{number}", question=question, answer=float(gold), answer_text=str(gold),
                   source="gsm_symbolic", split="test", meta={"template": number % 3})


def store_evaluation(run_dir: Path, folder: str, questions: dict[int, tuple[str, int, str, bool]],
                     dataset: str = TEST_SET) -> None:
    """The run's copy of the set and the model's graded greedy outputs on it, as a run writes them."""
    problems = [problem(n, q, gold) for n, (q, gold, _, _) in questions.items()]
    write_jsonl(problem_file(run_dir, dataset), problems)
    solutions = [to_solution(p.id, completion, FREE, f"student:{folder}", 0).model_copy(update={"truncated": cut})
                 for p, (_, _, completion, cut) in zip(problems, questions.values(), strict=True)]
    with SandboxPool(workers=1, timeout_s=10.0) as pool:
        verdicts = grade_student_outputs(Grader(sandbox=pool), {p.id: p for p in problems}, solutions)
    write_jsonl(eval_file(run_dir / folder, dataset), [GradedSolution(**s.model_dump(), verdict=v)
                                                      for s, v in zip(solutions, verdicts, strict=True)])


@pytest.fixture(scope="module")
def failures_report(tmp_path_factory) -> tuple[Path, str, str]:
    run_dir = make_run(tmp_path_factory.mktemp("failures"), full_metrics())
    store_evaluation(run_dir, "iter1", {n: (q, gold, "[cot]: Iteration 1 says 0.", False)
                                        for n, (q, gold, _, _) in QUESTIONS.items()})
    store_evaluation(run_dir, "iter2", QUESTIONS)
    md_path, html_path = write_report(run_dir)
    return run_dir, md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")


def examples(markdown: str) -> list[str]:
    """The problem ids shown, in order."""
    return [line.split("** ", 1)[1] for line in section(markdown, TITLE).splitlines()
            if line.startswith("- **Problem:**")]


def test_wrong_answers_of_the_best_iteration_per_strategy(failures_report):
    _, markdown, _ = failures_report
    assert f"## {TITLE} (iteration 2, `{TEST_SET}`)" in markdown
    text = section(markdown, TITLE)
    # cot: wrong on 1, 4, 5, 10, 11 (by id: 10 after 5), the first EXAMPLES_PER_STRATEGY shown; pot on 3; none on 6.
    assert f"### `cot`: 5 wrong of 6 chosen, the first {EXAMPLES_PER_STRATEGY} shown" in text
    assert "### `pot`: 1 wrong of 2 chosen" in text
    assert "### `none`: 1 wrong of 1 chosen" in text
    assert text.index("### `cot`") < text.index("### `pot`") < text.index("### `none`")
    assert examples(markdown) == [f"gsm\\_symbolic/test/{n}" for n in (1, 4, 5, 3, 6)]
    assert "Iteration 1 says" not in markdown
    sam = text.split("gsm\\_symbolic/test/4", 1)[1].split("- **Problem:**", 1)[0]
    assert "- **Question:** Sam had 10 dollars and spent 4. How many are left?" in sam
    assert "- **Gold answer:** 6\n" in sam and "- **Extracted answer:** 5\n" in sam
    assert "- **Hit the token limit:** no" in sam
    assert "```text\n10 - 4 = 5. The answer is 5.\n```" in sam
    program = text.split("gsm\\_symbolic/test/3", 1)[1].split("- **Problem:**", 1)[0]
    assert "- **Extracted answer:** 10\n" in program and "- **Gold answer:** 24\n" in program
    assert "```python\neggs_per_box = 6\nboxes = 4\nanswer = eggs_per_box + boxes\n```" in program
    untagged = text.split("gsm\\_symbolic/test/6", 1)[1]
    assert "- **Extracted answer:** none extracted" in untagged
    assert "- **Answer status:** invalid (no known strategy tag)" in untagged


def test_a_long_solution_is_shortened_with_a_note_and_the_token_limit_is_named(failures_report):
    _, markdown, page = failures_report
    car = section(markdown, TITLE).split("gsm\\_symbolic/test/5", 1)[1].split("- **Problem:**", 1)[0]
    assert "- **Hit the token limit:** yes" in car
    assert f"Step {SOLUTION_MAX_LINES}: 1 + 1 = 2." in car
    assert f"Step {SOLUTION_MAX_LINES + 1}:" not in car and "The answer is 2." not in car
    assert f"Solution shortened for this report: {SOLUTION_MAX_LINES} of its 41 lines (" in car
    assert "Solution shortened for this report" in page


def test_questions_and_solutions_are_escaped(failures_report):
    _, markdown, page = failures_report
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; 3 apples &amp; buys 4 *more*" in page
    rendered = MarkdownIt("commonmark").render(markdown)  # raw HTML allowed: it would pass <script> through
    assert "<script" not in rendered
    assert "Tom has &lt;script&gt;alert(1)&lt;/script&gt; 3 apples &amp; buys 4 *more*. How many apples?" in rendered
    assert "Mia buys 2 toys at \\$4 each and pays \\$8." in markdown  # not GitHub's math
    assert "Mia buys 2 toys at $4 each and pays $8." in rendered
    fences = [t for t in MarkdownIt("commonmark").parse(section(markdown, TITLE)) if t.type == "fence"]
    assert [t.info for t in fences] == ["text", "text", "text", "python", "text"]


def test_a_run_with_no_wrong_answer_says_so(tmp_path):
    run_dir = make_run(tmp_path, full_metrics())
    store_evaluation(run_dir, "iter2", {n: QUESTIONS[n] for n in (2, 7)})
    markdown = write_report(run_dir)[0].read_text(encoding="utf-8")
    text = section(markdown, TITLE)
    assert f"Every answer of iteration 2 on `{TEST_SET}` is right (2/2)" in text
    assert "###" not in text and "| " not in text


def test_a_lone_baseline_shows_its_chosen_model_and_falls_back_to_validation(tmp_path):
    metrics = full_metrics()
    metrics["run"]["method"] = "pot"
    first = metrics["iterations"][0]
    first["eval"] = {"validation": first["eval"]["validation"]}
    metrics.update(iterations=[first], best_iteration=1, routing={},
                   baselines={"pot": {**metrics["baselines"]["pot"], "eval": first["eval"]}})
    run_dir = make_run(tmp_path, metrics)
    store_evaluation(run_dir, "baselines/pot", {n: QUESTIONS[n] for n in (3, 7)}, dataset="validation")
    markdown = write_report(run_dir)[0].read_text(encoding="utf-8")
    assert f"## {TITLE} (`pot` at step 90, `validation`)" in markdown
    assert "baselines/pot/eval/validation.jsonl" in section(markdown, TITLE)
    assert examples(markdown) == ["gsm\\_symbolic/test/3"]


def test_a_run_without_stored_outputs_says_where_they_would_be(tmp_path):
    run_dir = make_run(tmp_path, full_metrics())
    markdown = write_report(run_dir)[0].read_text(encoding="utf-8")
    text = section(markdown, TITLE)
    assert "`iter2/eval/gsm_symbolic-test.jsonl` is not in the run directory" in text
    (run_dir / "metrics.json").write_text(json.dumps({**full_metrics(), "iterations": [], "best_iteration": None}))
    assert "No evaluated best model yet." in section(write_report(run_dir)[0].read_text(encoding="utf-8"), TITLE)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_a_browser_shows_the_script_question_as_text(failures_report, tmp_path):
    run_dir, _, _ = failures_report
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                             "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", (run_dir / "report.html").as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert "<h3><code>pot</code>: 1 wrong of 2 chosen</h3>" in result.stdout, result.stderr[-500:]
    assert "<script" not in result.stdout
    assert "Tom has &lt;script&gt;alert(1)&lt;/script&gt; 3 apples &amp; buys 4 *more*." in result.stdout


@pytest.mark.slow
def test_a_real_run_reports_its_wrong_answers(tiny_run: Path):
    """The loop's own layout: the best iteration's evaluation file and the run's copy of the test set."""
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    rows = read_jsonl(eval_file(tiny_run / f"iter{metrics['best_iteration']}", TEST_SET), GradedSolution)
    wrong = sorted((row for row in rows if not row.verdict.correct), key=lambda row: natural_key(row.problem_id))
    markdown = (tiny_run / "report.md").read_text(encoding="utf-8")
    text = section(markdown, TITLE)
    if not wrong:
        assert "there is no wrong answer to show" in text
        return
    first = next(p for p in read_jsonl(problem_file(tiny_run, TEST_SET), Problem) if p.id == wrong[0].problem_id)
    assert f"## {TITLE} (iteration {metrics['best_iteration']}, `{TEST_SET}`)" in markdown
    assert f"### `{wrong[0].verdict.strategy}`: " in text
    assert f"- **Gold answer:** {first.answer_text}\n" in text
    assert f"- **Question:** {md_text(first.question)}\n" in text
