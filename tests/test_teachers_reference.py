"""The reference teacher: worked solutions rewritten as CoT, L2M and PoT, verified by the real grader."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from siked.config import SikedConfig
from siked.data import load_problems
from siked.records import Problem
from siked.teachers import teach
from siked.teachers.reference import (
    asked_sentence,
    derived_pairs,
    program,
    reference_cot,
    reference_l2m,
    reference_pot,
    variable_name,
)
from siked.teachers.worked_steps import annotated_steps, evaluate, render, written_steps

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = DATA / "gsm8k"


def toy(question: str, solution: str, answer: float, **extra) -> Problem:
    return Problem(
        id="toy/0", question=question, answer=answer, answer_text=f"{answer:g}", source="toy", split="train",
        solution=solution, **extra,
    )


def test_annotations_with_leading_operators_rounding_and_signs_are_read():
    steps = annotated_steps(
        "She spent S + 30 + 46 = S + <<+30+46=76>>76.\n"
        "A third is 10/3 = <<10/3=3.33>>3.33 cups.\n"
        "Then <<3.33*3=9.99>>9.99 cups and <<5-8=-3>>-3 degrees.\n"
        "Broken <<2+=4>>4 and <<hello>>."
    )
    assert [(render(s.items), s.value) for s in steps] == [
        ("+ 30 + 46", 76.0), ("10 / 3", 3.33), ("3.33 * 3", 9.99), ("5 - 8", -3.0),
    ]
    assert steps[1].name_words == ["cups"]


@pytest.mark.parametrize(
    ("line", "expression", "value"),
    [
        ("The brokerage fee is $400,000 x 8/100 = $32,000.", "400000 * 8 / 100", 32000),
        ("so he works for 6 days/week * 2 weeks/month = 12 days/month", "6 * 2", 12),
        ("Robert sells 5 daisies x $2 = $10", "5 * 2", 10),
        ("They made 35 × 3 = 105 cookies", "35 * 3", 105),
        ("She has 160-48=112 left", "160 - 48", 112),
        ("183 games / 300 games * 100% = 61%", "183 / 300 * 100", 61),
        ("There are 2800 beds - 700 beds = 2100 beds.", "2800 - 700", 2100),
        ("Mia wrote 2/3 of it, which is 210 pages x 2/3 = 140 pages.", "210 * 2 / 3", 140),
        ("Each gets 10 / 3 = 3.33 cups", "10 / 3", 3.33),
        ("A 120-page book read at 120 / 4 = 30 pages a day", "120 / 4", 30),
        ("It drops 5 - 8 = -3 degrees", "5 - 8", -3),
    ],
)
def test_written_equations_become_verified_steps(line, expression, value):
    steps = written_steps(line)
    assert len(steps) == 1
    step = steps[0]
    assert render(step.items, step.plain_percent) == expression and step.value == value
    assert math.isclose(evaluate(render(step.items, step.plain_percent)), value, rel_tol=1e-2)


@pytest.mark.parametrize(
    "line",
    ["we get 2x+40=122", "leaving x=41", "so 12 + 3 = 16 apples", "y = x + 40", "It is 2:30 = late", "3 = 3"],
)
def test_algebra_wrong_arithmetic_and_bare_numbers_are_no_steps(line):
    assert written_steps(line) == []


def test_evaluate_is_arithmetic_only():
    assert evaluate("2 ** 10 / 4 - -1") == 257.0
    for bad in ("__import__('os')", "1 / 0", "9 ** 999999", "x + 1", "[1]"):
        assert evaluate(bad) is None


def test_program_refers_to_earlier_results_but_keeps_given_numbers():
    natalia = toy(
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.",
        72,
    )
    assert reference_pot(natalia) == "clips_in_may = 48 / 2\nanswer = 48 + clips_in_may"


def test_a_coincidental_value_with_another_unit_stays_a_literal():
    carpenter = toy(
        "A carpenter works for 2 weeks every month and for 6 days every week. If he gets paid £195 every "
        "day, how much does he earn if he works for a year?",
        "He works for 6 days/week * 2 weeks/month = 12 days/month\n"
        "He then earns £195/day * 12 days/month = £2340/month\n"
        "Every year he earns £2340/month * 12 months/year = £28080",
        28080,
    )
    assert reference_pot(carpenter) == (
        "days_per_month = 6 * 2\namount_per_month = 195 * days_per_month\nanswer = amount_per_month * 12"
    )


def test_half_times_a_number_is_a_step_so_the_program_halves():
    dax = toy(
        "Dax found half as many grasshoppers as beetles in the plot. If there were 188 beetles, calculate "
        "the total number of insects in the plot.",
        "If there were 188 beetles, the total number of grasshoppers in the plot is half * 188 beetles = 94 "
        "grasshoppers\nThe total number of insects in the plot is 94 grasshoppers + 188 beetles = 282 insects",
        282,
    )
    assert [render(s.items) for s in written_steps(dax.solution)] == ["0.5 * 188", "94 + 188"]
    assert reference_pot(dax) == (
        "total_number_grasshoppers_in = 0.5 * 188\nanswer = total_number_grasshoppers_in + 188"
    )
    assert written_steps("She is half happy and half = 3") == []  # a word alone is no number


def test_a_plain_number_computed_from_a_percentage_refers_to_its_step():
    smith = toy(
        "In Mr. Smith's class of 100 students, 80% of the class are basketball players. Out of the "
        "remaining class, 75% of the students are choir members. How many students are leaving early?",
        "80% of the 100 student class are basketball players so that's 0.8*100 = 80 students\n"
        "There are 100 students and 80 are basketball players so that leaves 100-80 = 20 students\n"
        "75% of the remaining 20 students are choir members so that's 0.75*20 = 15 students\n"
        "80 students are basketball players and 15 are choir members so 80+15 = 95 students will leave",
        95,
    )
    assert reference_pot(smith) == (
        "students = 0.8 * 100\nstudents_2 = 100 - students\nstudents_3 = 0.75 * students_2\n"
        "answer = students + students_3"
    )


def test_the_last_step_reaching_the_gold_is_the_answer_and_later_steps_are_dropped():
    steps = written_steps("A = 2 + 3 = 5 apples\nB = 5 * 4 = 20 apples\nCheck: 20 - 1 = 19")
    assert program(steps, 20, "Some question?") == "apples = 2 + 3\nanswer = apples * 4"
    assert program(steps, 999, "Some question?") is None


def test_variable_names_are_valid_unique_identifiers():
    used: set[str] = set()
    names = [variable_name(words, used, i) for i, words in enumerate(
        [["sum"], ["Sum"], ["3rd"], [], ["per", "day"], ["lambda"], ["Ms.", "Smith's", "pay"]]
    )]
    assert names == ["sum_value", "sum_value_2", "step_3", "step_4", "amount_per_day", "lambda_value", "ms_smiths_pay"]
    assert all(name.isidentifier() for name in names)


def test_cot_removes_annotations_and_states_the_answer():
    problem = toy("Q?", "It costs 2*3 = $<<2*3=6>>6 in total.", 6)
    assert reference_cot(problem) == "It costs 2*3 = $6 in total.\nThe answer is 6."


def test_l2m_uses_socratic_sub_questions_when_present():
    problem = toy(
        "Q?", "ignored", 5,
        sub_questions=("How much is the first part?", "How much in all?"),
        sub_answers=("It is 2+1 = <<2+1=3>>3.", "3+2 = <<3+2=5>>5."),
    )
    assert reference_l2m(problem) == (
        "Sub-question 1: How much is the first part?\nAnswer to Sub-question 1: It is 2+1 = 3.\n"
        "Sub-question 2: How much in all?\nAnswer to Sub-question 2: 3+2 = 5.\nThe answer is 5."
    )


def test_l2m_sub_questions_are_derived_from_the_steps_without_socratic_data():
    question = (
        "Ms. Johnson saw a property priced $400,000 with an 8% brokerage fee. Robert had 72 pebbles. "
        "How much more is the total price of the apartment than Ms. Johnson's budget?"
    )
    assert asked_sentence(question) == (
        "How much more is the total price of the apartment than Ms. Johnson's budget?"
    )
    solution = (
        "The brokerage fee is $400,000 x 8/100 = $32,000.\n"
        "Robert dropped his pebbles and was left with 72*0.5=36 pebbles.\n"
        "The roller coaster will cost $26 per person because 13 x 2 = 26\n"
        "First find the total lost revenue: €67/hour * 4 hours = €268\n"
        "A note without numbers.\n"
        "So, it is $488,000 - $410,000 = $78,000 more than Ms. Johnson's budget."
    )
    questions = [q for q, _ in derived_pairs(solution, question)]
    assert questions == [
        "What is the brokerage fee?",
        "Robert dropped his pebbles and was left with how many pebbles?",
        "The roller coaster will cost how much per person?",
        "What is the total lost revenue?",
        asked_sentence(question),
    ]
    answers = [a for _, a in derived_pairs(solution, question)]
    assert answers[-1].startswith("A note without numbers. So, it is")


def test_reference_teacher_on_gsm8k_train_slice(tmp_path):
    if not (GSM8K / "train.jsonl").is_file():
        pytest.skip(f"GSM8K not found in {GSM8K}")
    problems = load_problems("gsm8k", "train", data_file=GSM8K / "train.jsonl", limit=200)
    assert all(p.sub_questions for p in problems)
    console_text = io.StringIO()
    config = SikedConfig(teacher={"backend": "reference"}, sandbox={"workers": 2})
    result = teach(config, problems, tmp_path, console=Console(file=console_text, width=200), progress=False)

    stats = json.loads((tmp_path / "teacher_stats.json").read_text())
    assert stats["reference_solutions"] is True and stats["origin"] == "teacher:reference"
    assert stats["requests"] == 0 and "not an LLM" in stats["notice"]
    assert console_text.getvalue().count("not an LLM") == 1  # said once, with the stats
    by = stats["by_strategy"]
    assert by["cot"]["solve_rate"] == 1.0 and by["l2m"]["solve_rate"] == 1.0
    assert by["pot"]["solve_rate"] >= 0.95  # executed in the sandbox, graded against the gold
    assert stats["oracle_coverage"] == 1.0

    rows = [json.loads(line) for line in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    assert len(rows) == len(result.kept) == by["cot"]["kept"] + by["l2m"]["kept"] + by["pot"]["kept"]
    assert all(row["origin"] == "teacher:reference" for row in rows)
    problem_of = {p.id: p for p in problems}
    for row in rows:
        problem = problem_of[row["problem_id"]]
        assert "<<" not in row["solution"]
        if row["strategy"] == "l2m":
            for k, sub_question in enumerate(problem.sub_questions, start=1):
                assert f"Sub-question {k}: {sub_question}\n" in row["solution"]
        if row["strategy"] in ("cot", "l2m"):
            assert row["solution"].endswith(f"The answer is {problem.answer_text.replace(',', '')}.")
