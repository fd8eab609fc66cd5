"""Least-to-most as real teachers write it: many shapes accepted, one canonical form stored.

The fixtures in tests/fixtures/l2m/ are written in the shapes that Llama-3, Qwen2.5, GPT-4(o),
Gemma-2 and Mistral chat models use for least-to-most answers (with and without markdown);
`cases.json` gives each one's gold answer and number of sub-questions, and the negative cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siked.config import SikedConfig
from siked.grading import Grader, extract_answer
from siked.records import Problem
from siked.strategies import get_strategy
from siked.strategies.l2m import SUB_ANSWER_LINE, SUB_QUESTION_LINE, parse_l2m
from siked.teachers.teach import teach

FIXTURES = Path(__file__).parent / "fixtures" / "l2m"
CASES = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))
L2M = get_strategy("l2m")


def _text(name: str) -> str:
    return L2M.clean((FIXTURES / name).read_text(encoding="utf-8"))


def _problem(name: str, gold: float) -> Problem:
    return Problem(id=name, question=f"question of {name}", answer=gold, answer_text=str(gold),
                   source="fixture", split="test")


@pytest.mark.parametrize("name", sorted(CASES["accept"]))
def test_real_decomposition_shapes_are_valid_and_keep_their_answer(name):
    case = CASES["accept"][name]
    text = _text(name)
    assert L2M.invalid_reason(text) is None
    parsed = parse_l2m(text)
    assert len(parsed.steps) == case["pairs"]
    assert all(step.question and step.answer_text() for step in parsed.steps)

    grader = Grader()
    problem = _problem(name, case["gold"])
    before = grader.grade(problem, "l2m", text)
    assert before.correct, before
    canonical = L2M.canonical(text, extract_answer(text))
    lines = canonical.splitlines()
    assert len(lines) == 2 * case["pairs"] + 1
    for k in range(case["pairs"]):
        assert SUB_QUESTION_LINE.match(lines[2 * k]).group(1) == str(k + 1)
        assert SUB_ANSWER_LINE.match(lines[2 * k + 1]).group(1) == str(k + 1)
    assert lines[-1].startswith("The answer is ")
    assert "**" not in canonical and "###" not in canonical and "\\boxed" not in canonical
    after = grader.grade(problem, "l2m", canonical)
    assert after.correct and after.predicted == before.predicted
    assert L2M.canonical(canonical, extract_answer(canonical)) == canonical  # a fixed point


@pytest.mark.parametrize("name", sorted(CASES["reject"]))
def test_text_without_an_ordered_answered_decomposition_is_invalid(name):
    reason = L2M.invalid_reason(_text(name))
    assert reason is not None and CASES["reject"][name] in reason
    verdict = Grader().grade(_problem(name, 18), "l2m", _text(name))
    assert verdict.status == "invalid" and not verdict.correct


def test_canonical_leaves_an_invalid_text_alone():
    assert L2M.canonical("The answer is 18.", "18") == "The answer is 18."


def test_teach_stores_l2m_in_one_canonical_form(tmp_path):
    rows, problems = [], []
    for name, case in sorted(CASES["accept"].items()):
        rows.append({"problem_id": name, "strategy": "l2m", "solution": (FIXTURES / name).read_text()})
        problems.append(_problem(name, case["gold"]))
    path = tmp_path / "solutions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = SikedConfig(teacher={"backend": "file", "file": {"path": str(path)}, "strategies": ["l2m"]})
    result = teach(config, problems, tmp_path / "out", progress=False)

    assert len(result.kept) == len(rows)
    assert result.stats["canonical_form"] == {"rewritten": len(rows), "kept_as_written": 0}
    stored = [json.loads(line) for line in (tmp_path / "out" / "teacher.jsonl").read_text().splitlines()]
    grader = Grader()
    by_id = {p.id: p for p in problems}
    for row in stored:
        lines = row["solution"].splitlines()
        assert lines[0].startswith("Sub-question 1: ") and lines[-1].startswith("The answer is ")
        assert all(SUB_QUESTION_LINE.match(line) or SUB_ANSWER_LINE.match(line) for line in lines[:-1])
        assert grader.grade(by_id[row["problem_id"]], "l2m", row["solution"]).correct


def test_an_unanswered_step_is_tolerated_and_dropped_from_the_canonical_form():
    text = ("Sub-question 1: How many eggs are left?\nAnswer to Sub-question 1: 16 - 7 = 9 eggs.\n"
            "Sub-question 2: How many eggs are left?\nAnswer to Sub-question 2:\n"
            "Sub-question 3: How much does she make?\nAnswer to Sub-question 3: 9 * 2 = $18.\nThe answer is 18.")
    assert L2M.invalid_reason(text) is None
    canonical = L2M.canonical(text, "18")
    assert canonical == ("Sub-question 1: How many eggs are left?\nAnswer to Sub-question 1: 16 - 7 = 9 eggs.\n"
                         "Sub-question 2: How much does she make?\nAnswer to Sub-question 2: 9 * 2 = $18.\n"
                         "The answer is 18.")
