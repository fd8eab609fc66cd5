import json
import math
import threading
import time
from pathlib import Path

import pytest

from siked.config import GradingConfig, SikedConfig
from siked.grading import (
    Grader,
    MathVerifyTimeout,
    answers_match,
    extract_answer,
    math_verify_compare,
    math_verify_safe_input,
    parse_number,
    time_limit,
)
from siked.records import Problem
from siked.strategies import format_l2m

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = DATA / "gsm8k"

JANET = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day?"
)


def problem(answer: float | None, answer_text: str | None = None, pid: str = "p0") -> Problem:
    text = answer_text if answer_text is not None else f"{answer:g}"
    return Problem(id=pid, question=JANET, answer=answer, answer_text=text, source="test", split="test")


# --- extract_answer on text shaped like real model output -------------------------------------

EXTRACTION_CASES = {
    "llama_cot_answer_is": (
        "Let's break this down step by step.\n\n"
        "1. Janet's ducks lay 16 eggs per day.\n"
        "2. She eats 3 for breakfast and uses 4 for muffins, so she uses 3 + 4 = 7 eggs.\n"
        "3. That leaves 16 - 7 = 9 eggs to sell.\n"
        "4. She sells each egg for $2, so she makes 9 x $2 = $18.\n\n"
        "The answer is 18.",
        "18",
    ),
    "llama3_boxed": (
        "## Step 1: Eggs left to sell\nJanet has 16 - 3 - 4 = 9 eggs left.\n\n"
        "## Step 2: Money made\nShe makes 9 * 2 = 18 dollars.\n\n"
        "The final answer is: $\\boxed{18}$",
        "18",
    ),
    "qwen_final_answer_block": (
        "Janet sells 16 - 3 - 4 = 9 eggs, so she earns 9 \\times 2 = 18 dollars.\n\n"
        "**Final Answer**\n\\[\n\\boxed{18}\n\\]",
        "18",
    ),
    "final_answer_restated": (
        "Tom starts with 12 apples, buys 35 more and gives away 5: 12 + 35 - 5 = 42.\n"
        "Final answer: The total number of apples Tom has is 42.",
        "42",
    ),
    "final_answer_restated_number_first": (
        "He had 40 and found 2 more.\nFinal answer: Tom has 42 apples after 3 days.",
        "42",
    ),
    "gsm8k_style_marker_beats_later_numbers": (
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18\nShe sold 9 eggs on day 2.",
        "18",
    ),
    "nested_boxed_fraction": ("So she drinks $\\boxed{\\frac{3}{4}}$ of the bottle.", "\\frac{3}{4}"),
    "currency_with_thousands": ("The total cost is 1,000 + 234.50 = $1,234.50.\nThe answer is $1,234.50.", "$1,234.50"),
    "percent": ("The discount is 50 / 200 = 25%.\nThe answer is 25%.", "25%"),
    "unit_after_number": ("The box weighs 8 * 2 = 16 pounds.\nThe answer is 16 pounds.", "16"),
    "plain_fraction": ("Each friend gets 3 of the 4 slices.\nThe answer is 3/4.", "3/4"),
    "mixed_number": ("The recipe needs 1 1/2 cups.\nThe answer is 1 1/2.", "1 1/2"),
    "negative": ("The temperature fell from 5 to -7 degrees.\nThe answer is -7.", "-7"),
    "decimal": ("Each pen costs 7.5 / 3 = 2.5 dollars.\nThe answer is 2.5.", "2.5"),
    "scientific": ("The result is 1450000.\nThe answer is 1.45e+06.", "1.45e+06"),
    "markdown_bold": ("She makes 9 * 2 = 18 dollars.\n\n**Answer: 18**", "18"),
    "bold_after_marker": ("She makes 9 * 2 = 18 dollars.\nThe answer is **18**.", "18"),
    "equation_after_marker": ("She sells the rest.\nThe answer is 9 * 2 = 18.", "18"),
    "marker_without_number_falls_back": (
        "She makes 9 * 2 = 18 dollars. The answer is 18.\nLet me check: 9 * 2 = 18, so the answer is correct.",
        "18",
    ),
    "no_marker_last_line_result": ("Janet has 16 - 7 = 9 eggs.\nIt earns her 9 * 2 = 18 dollars on 1 day.", "18"),
    "no_marker_last_number": ("Janet has 9 eggs left and sells them for 18 dollars", "18"),
    "latex_inline_math": ("Thus the side is $\\sqrt{2}$.\nThe answer is $\\sqrt{2}$.", "\\sqrt{2}"),
    "question_restated_mid_text": (
        "We want the answer: how many apples Tom has after 3 days.\nTom has 5 + 37 = 42 apples.",
        "42",
    ),
}


@pytest.mark.parametrize("text, expected", EXTRACTION_CASES.values(), ids=EXTRACTION_CASES.keys())
def test_extract_answer_reads_real_output_shapes(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "I don't know how to solve this.", "The answer is unclear."])
def test_extract_answer_without_any_number(text):
    assert extract_answer(text) is None


# --- parse_number and answers_match ------------------------------------------------------------

PARSE_CASES = [
    ("72", 72.0), ("72.", 72.0), ("$1,234.50", 1234.5), ("-$5", -5.0), ("$-5", -5.0), ("25%", 25.0),
    ("50\\%", 50.0), ("3/4", 0.75), ("-3/4", -0.75), ("\\frac{3}{4}", 0.75), ("\\dfrac{7}{2}", 3.5),
    ("1 1/2", 1.5), ("2 \\frac{1}{4}", 2.25), ("42 pounds", 42.0), ("\\text{42 apples}", 42.0),
    ("$42$", 42.0), ("**72**", 72.0), ("x = 5", 5.0), ("1e-05", 1e-05), (".5", 0.5),
    ("1,000,000", 1e6), ("90^\\circ", 90.0), ("\u22127", -7.0), ("1.45e+06", 1.45e6),
]


@pytest.mark.parametrize("text, value", PARSE_CASES)
def test_parse_number(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "Tom", "3 + 4", "12,34", "3:4", "5 and 6", "\\sqrt{2}", "1/0", "[18]"])
def test_parse_number_refuses_what_is_not_one_number(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "predicted, gold, match",
    [
        (17.999999, 18, True),  # float noise around an integer gold
        (18.000001, 18, True),
        (0.1 + 0.2, 0.3, True),
        (0.33333, 1 / 3, True),  # five significant digits are within 1e-4 relative
        (0.333, 1 / 3, False),  # three are not
        (1e-12, 0, True),
        (18.5, 18, False),
        (1_000_050, 1_000_000, False),  # inside 1e-4 relative, but not the integer gold
        (-5, 5, False),
        (math.nan, 1, False),
        (math.inf, math.inf, False),
    ],
)
def test_answers_match(predicted, gold, match):
    assert answers_match(predicted, gold) is match


def test_answers_match_uses_the_given_tolerance():
    assert not answers_match(2.51, 2.5)
    assert answers_match(2.51, 2.5, rel_tol=1e-2)


# --- grading text strategies -------------------------------------------------------------------

COT_STUDENT = (
    "[cot]: Janet uses 3 + 4 = 7 eggs, so she sells 16 - 7 = 9 eggs.\n"
    "She makes 9 * 2 = $18 every day.\nThe answer is 18.\n\n"
    "Question: A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts?\n"
    "Answer: It takes 2 + 1 = 3 bolts. The answer is 3."
)

L2M_TEACHER = (
    "Sub-question 1: How many eggs does Janet use each day?\n"
    "Answer to Sub-question 1: 3 for breakfast and 4 for muffins, 3 + 4 = 7 eggs.\n"
    "Sub-question 2: How many eggs does she sell?\n"
    "Answer to Sub-question 2: 16 - 7 = 9 eggs.\n"
    "Sub-question 3: How much does she make every day?\n"
    "Answer to Sub-question 3: 9 * 2 = $18.\n"
    "The answer is 18."
)


def test_grades_a_tagged_student_cot_that_rambles_on():
    verdict = Grader().grade(problem(18), "cot", COT_STUDENT)
    assert (verdict.status, verdict.correct, verdict.predicted) == ("ok", True, 18.0)
    assert verdict.predicted_text == "18"
    assert verdict.detail is None


def test_grades_l2m_on_its_final_answer_not_the_sub_answers():
    grader = Grader()
    assert grader.grade(problem(18), "l2m", L2M_TEACHER).correct
    wrong = grader.grade(problem(9), "l2m", L2M_TEACHER)
    assert (wrong.status, wrong.correct, wrong.predicted) == ("ok", False, 18.0)


def test_grades_l2m_without_a_final_line_on_the_last_sub_answer():
    text = "[l2m]: " + L2M_TEACHER.rsplit("\n", 1)[0]
    verdict = Grader().grade(problem(18), "l2m", text)
    assert verdict.correct and verdict.predicted == 18.0


def test_l2m_with_an_answer_line_per_sub_question_counts_the_last():
    text = (
        "Sub-question 1: How many eggs does Janet sell?\n"
        "Answer to Sub-question 1: 16 - 3 - 4 = 9. The answer is 9.\n"
        "Sub-question 2: How much does she make every day?\n"
        "Answer to Sub-question 2: 9 * 2 = 18. The answer is 18.\n"
    )
    verdict = Grader().grade(problem(18), "l2m", text)
    assert verdict.correct and verdict.predicted_text == "18"


def test_progress_counts_every_graded_item():
    items = [(problem(18, pid=str(i)), "cot", f"The answer is {i}.") for i in range(17, 20)]
    advanced = []
    verdicts = Grader().grade_many(items, progress=advanced.append)
    assert sum(advanced) == 3
    assert [v.correct for v in verdicts] == [False, True, False]


def test_l2m_without_sub_questions_is_invalid():
    verdict = Grader().grade(problem(18), "l2m", "Janet makes 9 * 2 = 18 dollars. The answer is 18.")
    assert verdict.status == "invalid" and not verdict.correct
    assert "Sub-question" in verdict.detail


def test_wrong_number_is_ok_but_not_correct():
    verdict = Grader().grade(problem(18), "cot", "She sells 16 - 3 = 13 eggs.\nThe answer is 26.")
    assert (verdict.status, verdict.correct, verdict.predicted, verdict.predicted_text) == (
        "ok", False, 26.0, "26",
    )


def test_solution_without_a_number_has_no_answer():
    verdict = Grader().grade(problem(18), "cot", "I am not sure how to solve this problem.")
    assert (verdict.status, verdict.correct, verdict.predicted) == ("no_answer", False, None)
    assert verdict.detail


def test_empty_cot_is_invalid():
    verdict = Grader().grade(problem(18), "cot", "[cot]:   ")
    assert verdict.status == "invalid" and verdict.detail == "empty solution"


def test_unknown_strategy_is_an_error_for_the_caller():
    with pytest.raises(KeyError, match="unknown strategy"):
        Grader().grade(problem(18), "tot", "The answer is 18.")


# --- math-verify fallback ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "solution, gold",
    [
        ("The answer is $\\frac34$.", 0.75),
        ("The side is $\\sqrt{2}$.\nThe answer is $\\sqrt{2}$.", 1.41421356),
        ("There are $2^{10}$ subsets.\nThe answer is $2^{10}$.", 1024),
        ("The answer is $3 \\times 4$.", 12),
    ],
)
def test_math_verify_reads_symbolic_answers(solution, gold):
    verdict = Grader().grade(problem(gold), "cot", solution)
    assert verdict.status == "ok" and verdict.correct
    assert verdict.predicted == pytest.approx(gold, rel=1e-4)


def test_math_verify_symbolic_answer_can_be_wrong():
    verdict = Grader().grade(problem(1.5), "cot", "The answer is $\\sqrt{2}$.")
    assert verdict.status == "ok" and not verdict.correct
    assert verdict.predicted == pytest.approx(math.sqrt(2))


def test_symbolic_answer_without_math_verify_has_no_answer():
    verdict = Grader(use_math_verify=False).grade(problem(1024), "cot", "The answer is $2^{10}$.")
    assert verdict.status == "no_answer" and "math-verify is off" in verdict.detail


def test_non_numeric_gold_is_graded_by_math_verify():
    gold = problem(None, answer_text="\\sqrt{2}")
    assert Grader().grade(gold, "cot", "The answer is $\\sqrt{2}$.").correct
    wrong = Grader().grade(gold, "cot", "The answer is $\\sqrt{3}$.")
    assert wrong.status == "ok" and not wrong.correct


@pytest.mark.parametrize("gold_text", ["2 and 5", "18; 12", "3:4", "the blue one"])
def test_non_numeric_gold_that_math_verify_only_half_reads_is_an_error(gold_text):
    verdict = Grader().grade(problem(None, gold_text), "cot", "The answer is 5.")
    assert (verdict.status, verdict.correct) == ("error", False)
    assert "not a number" in verdict.detail and verdict.predicted == 5.0


def test_non_numeric_gold_without_math_verify_is_an_error():
    verdict = Grader(use_math_verify=False).grade(problem(None, "2 and 5"), "cot", "The answer is 2.")
    assert verdict.status == "error" and "not a number" in verdict.detail


def test_huge_powers_never_reach_math_verify():
    assert not math_verify_safe_input("10^{10^{10}}")
    assert not math_verify_safe_input("2^{100000000}")
    assert not math_verify_safe_input("(10^{10})!")
    assert math_verify_safe_input("2^{10}")
    verdict = Grader().grade(problem(5), "cot", "The answer is $10^{10^{10}}$.")
    assert verdict.status == "no_answer" and "too large" in verdict.detail


def test_time_limit_interrupts_a_busy_loop():
    started = time.monotonic()
    with pytest.raises(MathVerifyTimeout), time_limit(0.2):
        while True:
            pass
    assert time.monotonic() - started < 5


def test_time_limit_counts_cpu_time_so_a_busy_machine_does_not_time_out_a_verdict():
    """Waiting for a core (here: sleeping) spends wall time, not CPU time: no timeout."""
    with time_limit(0.2):
        time.sleep(0.5)


def test_math_verify_fallback_works_off_the_main_thread():
    results = []
    worker = threading.Thread(
        target=lambda: results.append(math_verify_compare("\\frac34", 0.75, "0.75", 1.0, 1e-4))
    )
    worker.start()
    worker.join(timeout=30)
    assert results and results[0].equal is True and results[0].value == pytest.approx(0.75)


# --- configuration and batching ----------------------------------------------------------------


def test_from_config_takes_the_grading_section():
    cfg = SikedConfig(grading=GradingConfig(rel_tol=1e-2, use_math_verify=False, math_verify_timeout_s=3))
    grader = Grader.from_config(cfg, None)
    assert (grader.rel_tol, grader.use_math_verify, grader.math_verify_timeout_s) == (1e-2, False, 3)
    assert grader.sandbox is None
    assert grader.grade(problem(2.5), "cot", "The answer is 2.51.").correct


def test_pot_without_a_sandbox_is_refused():
    with pytest.raises(ValueError, match="sandbox"):
        Grader().grade(problem(18), "pot", "answer = (16 - 3 - 4) * 2")


def test_invalid_pot_needs_no_sandbox():
    verdict = Grader().grade(problem(18), "pot", "```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```")
    assert verdict.status == "invalid" and "answer" in verdict.detail


# --- programs in a real sandbox ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    module = pytest.importorskip("siked.sandbox")
    with module.SandboxPool(workers=2, timeout_s=2.0) as pool:
        yield pool


POT_FENCED = (
    "[pot]: ```python\n"
    "eggs_per_day = 16\n"
    "eaten = 3\n"
    "baked = 4\n"
    "price_per_egg = 2\n"
    "answer = (eggs_per_day - eaten - baked) * price_per_egg\n"
    "print(answer)\n"
    "```\n"
    "The program prints 18."
)


def test_grade_many_runs_programs_in_order_next_to_text(sandbox):
    items = [
        (problem(18, pid="a"), "pot", POT_FENCED),
        (problem(18, pid="b"), "cot", COT_STUDENT),
        (problem(0.75, pid="c"), "pot", "from fractions import Fraction\nanswer = Fraction(3, 4)"),
        (problem(121, pid="d"), "pot", (
            "first_ship = Symbol('first_ship', positive=True)\n"
            "total_eaten = first_ship + 2 * first_ship + 4 * first_ship\n"
            "answer = solve_it([Eq(total_eaten, 847)], [first_ship])[first_ship]"
        )),
        (problem(18, pid="e"), "pot", "answer = 16 - 3 - 4"),
        (problem(18, pid="f"), "pot", "while True:\n    pass\nanswer = 18"),
        (problem(18, pid="g"), "pot", "eggs = 16\nanswer = eggs / 0"),
        (problem(18, pid="h"), "pot", "if False:\n    answer = 18"),
        (problem(18, pid="i"), "pot", "answer = (16 - 3 - 4"),
        (problem(18, pid="j"), "pot", "answer = 'eighteen'"),
    ]
    advanced = []
    verdicts = Grader(sandbox=sandbox).grade_many(items, progress=advanced.append)
    assert sum(advanced) == len(items)
    assert [v.problem_id for v in verdicts] == list("abcdefghij")
    table = {v.problem_id: v for v in verdicts}
    assert (table["a"].status, table["a"].correct, table["a"].predicted) == ("ok", True, 18.0)
    assert table["b"].correct
    assert table["c"].correct and table["c"].predicted == pytest.approx(0.75)
    assert table["d"].correct
    assert (table["e"].status, table["e"].correct, table["e"].predicted) == ("ok", False, 9.0)
    assert table["f"].status == "timeout" and table["f"].detail
    assert table["g"].status == "error" and "ZeroDivisionError" in table["g"].detail
    assert table["h"].status == "no_answer"
    assert table["i"].status == "invalid" and "not valid Python" in table["i"].detail
    assert table["j"].status == "no_answer" and "eighteen" in table["j"].detail


# --- real GSM8K rows ---------------------------------------------------------------------------


def gsm8k_rows(name: str) -> list[dict]:
    path = GSM8K / name
    if not path.is_file():
        pytest.skip(f"GSM8K data not found at {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold_of(row: dict) -> float:
    return float(row["answer"].rsplit("####", 1)[1].strip().replace(",", ""))


def test_every_gsm8k_test_worked_solution_grades_correct():
    rows = gsm8k_rows("test.jsonl")
    items = [
        (problem(gold_of(row), pid=f"gsm8k-test-{i}"), "cot", row["answer"]) for i, row in enumerate(rows)
    ]
    verdicts = Grader(use_math_verify=False).grade_many(items)
    failed = [(v.problem_id, v.predicted_text) for v in verdicts if not v.correct]
    assert not failed, failed[:5]
    assert len(verdicts) == 1319


def test_gsm8k_socratic_steps_grade_as_l2m():
    rows = gsm8k_rows("test_socratic.jsonl")
    with_final, without_final = [], []
    for i, row in enumerate(rows):
        steps = [line.split(" ** ", 1) for line in row["answer"].rsplit("####", 1)[0].strip().splitlines()]
        pairs = [(q, a) for q, a in steps]
        gold = problem(gold_of(row), pid=f"gsm8k-socratic-{i}")
        with_final.append((gold, "l2m", format_l2m(pairs, row["answer"].rsplit("####", 1)[1].strip())))
        without_final.append((gold, "l2m", format_l2m(pairs)))
    grader = Grader(use_math_verify=False)
    assert all(v.correct for v in grader.grade_many(with_final))
    # Without "The answer is", the last sub-answer's result counts; a few steps end on another number.
    share = sum(v.correct for v in grader.grade_many(without_final)) / len(rows)
    assert share > 0.97
