import math

import pytest

from siked.evaluation import distribution, kl_add_one, routing, sample_summary, summarize
from siked.records import Problem, Solution, Verdict


def verdict(pid, strategy, correct, status="ok"):
    return Verdict(problem_id=pid, strategy=strategy, status=status, correct=correct)


def problem(pid):
    return Problem(id=pid, question="q", answer=1.0, answer_text="1", source="t", split="test")


def test_summarize_counts_accuracy_strategies_and_statuses():
    verdicts = [
        verdict("a", "cot", True), verdict("b", "cot", False), verdict("c", "pot", True),
        verdict("d", "none", False, "invalid"),
    ]
    summary = summarize(verdicts)
    assert summary["total"] == 4 and summary["correct"] == 2 and summary["accuracy"] == 0.5
    assert summary["by_strategy"]["cot"] == {"total": 2, "correct": 1, "accuracy": 0.5}
    assert summary["strategy_distribution"] == {"cot": 0.5, "none": 0.25, "pot": 0.25}
    assert summary["by_status"] == {"invalid": 1, "ok": 3}
    assert summarize([])["accuracy"] == 0.0


def test_add_one_kl_follows_the_students_choices_and_is_bounded_by_its_sample_count():
    train = {"cot": 50, "pot": 50}
    # hand-computed: P_student smoothed = (c + 1) / (N + 2)
    near = kl_add_one(train, {"cot": 59, "pot": 39})
    assert near == pytest.approx(0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4), rel=1e-9)
    far = kl_add_one(train, {"cot": 94, "pot": 4})
    assert 0 < near < far
    assert kl_add_one(train, {"cot": 49, "pot": 49}) == pytest.approx(0.0, abs=1e-12)
    # a strategy never picked counts as one pick in N + K: bounded by ln(N + K), not by a constant's log
    never = kl_add_one(train, {"cot": 68})
    assert never == pytest.approx(0.5 * math.log(0.5 / (69 / 70)) + 0.5 * math.log(0.5 / (1 / 70)), rel=1e-9)
    assert never < math.log(70)
    # the taught strategies are in the support even where neither side has them
    assert kl_add_one({"cot": 1}, {"cot": 1}, names=["cot", "l2m", "pot"]) == pytest.approx(math.log(1 / (2 / 4)))
    assert kl_add_one({}, {"cot": 1}) is None and kl_add_one({"cot": 1}, {}) is None


def test_distribution_shares():
    assert distribution(["cot", "pot", "cot", "l2m"]) == {"cot": 0.5, "l2m": 0.25, "pot": 0.25}
    assert distribution([]) == {}


def test_routing_oracle_and_exclusive_solves():
    problems = [problem(p) for p in "abcd"]
    forced = {
        "cot": [verdict("a", "cot", True), verdict("b", "cot", False), verdict("c", "cot", False), verdict("d", "cot", False)],
        "l2m": [verdict("a", "l2m", True), verdict("b", "l2m", True), verdict("c", "l2m", False), verdict("d", "l2m", False)],
        "pot": [verdict("a", "pot", False), verdict("b", "pot", False), verdict("c", "pot", True), verdict("d", "pot", False)],
    }
    table = routing(problems, forced)
    assert table["oracle_accuracy"] == 0.75
    assert table["best_single_accuracy"] == 0.5
    assert table["solved_by"] == {"cot": 1, "l2m": 2, "pot": 1}
    assert table["only_by"] == {"cot": 0, "l2m": 1, "pot": 1}
    assert table["per_question"] == {"a": ["cot", "l2m"], "b": ["l2m"], "c": ["pot"], "d": []}


def test_sample_summary_counts_solved_questions():
    solutions = [Solution(problem_id=p, strategy=s, solution="x") for p, s in [("a", "cot"), ("a", "pot"), ("b", "pot")]]
    verdicts = [verdict("a", "cot", True), verdict("a", "pot", True), verdict("b", "pot", False)]
    summary = sample_summary([problem("a"), problem("b")], solutions, verdicts)
    assert summary == {"samples": 3, "correct": 2, "questions": 2, "solved_questions": 1,
                       "strategy_counts": {"cot": 1, "pot": 2}}
