import pytest

from siked.mixing import (
    cap_per_strategy,
    correct_solutions,
    deduplicate,
    mix,
    one_per_question,
    select_teacher,
)
from siked.records import Solution, Verdict


def sol(pid, strategy, text, origin="teacher:reference"):
    return Solution(problem_id=pid, strategy=strategy, solution=text, origin=origin)


def stu(pid, strategy, text):
    return sol(pid, strategy, text, origin="student:1")


TEACHER = [
    sol("q1", "cot", "t1 cot"), sol("q1", "l2m", "t1 l2m"), sol("q1", "pot", "answer = 1"),
    sol("q2", "cot", "t2 cot"), sol("q2", "pot", "answer = 2"),
    sol("q3", "l2m", "t3 l2m"),
]


def test_paper_line_adaptive_adds_teacher_exactly_for_unsolved_ids():
    student = [stu("q1", "pot", "answer = 1 * 1"), stu("q2", "cot", "s2 cot")]
    result = mix(TEACHER, student, mode="adaptive", line="paper")
    teacher_ids = {r.problem_id for r in result.records if r.origin.startswith("teacher")}
    assert teacher_ids == {"q3"}
    assert result.teacher_count == 1 and result.student_count == 2
    assert result.alpha == pytest.approx(1 / 3)


def test_unbiased_line_adaptive_adds_teacher_of_strategy_s_only_where_the_student_failed_with_s():
    student = [stu("q1", "pot", "answer = 1 * 1"), stu("q2", "cot", "s2 cot")]
    result = mix(TEACHER, student, mode="adaptive", line="unbiased")
    teacher_pairs = {(r.problem_id, r.strategy) for r in result.records if r.origin.startswith("teacher")}
    assert teacher_pairs == {("q1", "cot"), ("q1", "l2m"), ("q2", "pot"), ("q3", "l2m")}
    assert result.alpha == pytest.approx(4 / 6)


def test_all_keeps_every_teacher_solution_and_alpha_matches_counts():
    student = [stu("q1", "pot", "answer = 1 * 1"), stu("q3", "cot", "s3 cot")]
    result = mix(TEACHER, student, mode="all")
    assert result.teacher_count == len(TEACHER)
    assert result.student_count == 2
    assert result.alpha == pytest.approx(6 / 8)
    assert result.strategy_counts == {"cot": 3, "l2m": 2, "pot": 3}


def test_student_mode_has_no_teacher_data():
    student = [stu("q1", "pot", "answer = 1 * 1")]
    result = mix(TEACHER, student, mode="student")
    assert result.records == student and result.alpha == 0.0
    assert mix([], [], mode="student").alpha == 0.0


def test_alpha_falls_as_the_student_solves_more():
    weak = mix(TEACHER, [stu("q1", "cot", "a")], mode="adaptive", line="paper")
    strong = mix(TEACHER, [stu(q, "cot", "a") for q in ("q1", "q2", "q3")], mode="adaptive", line="paper")
    assert strong.alpha < weak.alpha
    assert strong.alpha == 0.0


def test_cap_and_dedup_per_question_and_strategy():
    student = [
        stu("q1", "cot", "same  text"), stu("q1", "cot", "same text"),  # whitespace duplicate
        stu("q1", "cot", "other text"), stu("q1", "pot", "answer = 3"),
    ]
    assert len(deduplicate(student)) == 3
    assert [r.solution for r in cap_per_strategy(deduplicate(student), 1)] == ["same  text", "answer = 3"]
    result = mix([], student, mode="all", max_per_strategy=2)
    assert result.student_count == 3


def test_student_solution_identical_to_a_teacher_one_counts_once():
    student = [stu("q2", "cot", "t2   cot")]
    result = mix(TEACHER, student, mode="all")
    assert result.teacher_count == len(TEACHER) - 1
    assert result.student_count == 1


def test_one_per_question_keeps_the_highest_priority_strategy_and_the_first_on_a_tie():
    kept = one_per_question(TEACHER, ["pot", "cot", "l2m"])
    assert [(r.problem_id, r.strategy) for r in kept] == [("q1", "pot"), ("q2", "pot"), ("q3", "l2m")]
    kept = one_per_question(TEACHER, ["l2m", "pot", "cot"])
    assert [(r.problem_id, r.strategy) for r in kept] == [("q1", "l2m"), ("q2", "pot"), ("q3", "l2m")]
    tie = [stu("q1", "cot", "student cot"), sol("q1", "cot", "teacher cot")]
    assert one_per_question(tie, ["cot"]) == tie[:1]


@pytest.mark.parametrize("priority", [["pot", "cot", "l2m"], ["cot", "pot", "l2m"], ["l2m", "pot", "cot"]])
def test_biased_line_keeps_one_solution_per_question_by_priority(priority):
    student = [stu("q1", "cot", "s1 cot"), stu("q1", "l2m", "s1 l2m"), stu("q2", "l2m", "s2 l2m")]
    rank = {name: i for i, name in enumerate(priority)}
    for mode in ("adaptive", "all"):
        result = mix(TEACHER, student, mode=mode, line="biased", priority=priority)
        by_question = {}
        for record in result.records:
            assert record.problem_id not in by_question  # one per question
            by_question[record.problem_id] = record
        assert set(by_question) == {"q1", "q2", "q3"}
        candidates = student + (TEACHER if mode == "all" else [t for t in TEACHER if t.problem_id == "q3"])
        for pid, record in by_question.items():
            best = min(rank[c.strategy] for c in candidates if c.problem_id == pid)
            assert rank[record.strategy] == best
        assert result.teacher_count + result.student_count == 3
    # adaptive: a question the student solved never takes teacher data, whatever its priority
    adaptive = mix(TEACHER, student, mode="adaptive", line="biased", priority=priority)
    assert {r.problem_id for r in adaptive.records if r.origin.startswith("teacher")} == {"q3"}


def test_biased_line_iteration_one_is_the_teachers_priority_choice():
    result = mix(TEACHER, [], mode="adaptive", line="biased", priority=["cot", "pot", "l2m"], first_iteration=True)
    assert [(r.problem_id, r.strategy) for r in result.records] == [("q1", "cot"), ("q2", "cot"), ("q3", "l2m")]
    assert result.alpha == 1.0


@pytest.mark.parametrize("line", ["unbiased", "biased", "paper"])
def test_teacher_control_trains_on_teacher_data_only_whatever_the_student_solved(line):
    student = [stu(q, "cot", "s") for q in ("q1", "q2", "q3")]
    first = mix(TEACHER, [], mode="teacher", line=line, first_iteration=True)
    later = mix(TEACHER, student, mode="teacher", line=line)
    assert later.records == first.records and later.student_count == 0 and later.alpha == 1.0
    assert later.fallback is None


def test_correct_solutions_follow_verdicts_and_check_alignment():
    solutions = [stu("q1", "cot", "a"), stu("q2", "cot", "b")]
    verdicts = [
        Verdict(problem_id="q1", strategy="cot", status="ok", correct=True, predicted=1.0),
        Verdict(problem_id="q2", strategy="cot", status="ok", correct=False, predicted=2.0),
    ]
    assert correct_solutions(solutions, verdicts) == solutions[:1]
    with pytest.raises(ValueError, match="aligned"):
        correct_solutions(solutions, verdicts[::-1])
    with pytest.raises(ValueError, match="2 solutions but 1 verdicts"):
        correct_solutions(solutions, verdicts[:1])


def test_unknown_mode_and_line_are_clear_errors():
    with pytest.raises(ValueError, match="unknown mixing mode 'some'"):
        mix(TEACHER, [], mode="some")
    with pytest.raises(ValueError, match="unknown mixing line 'token'"):
        mix(TEACHER, [stu("q1", "cot", "a")], mode="adaptive", line="token")


@pytest.mark.parametrize("mode", ["all", "adaptive", "student", "teacher"])
def test_iteration_one_trains_on_teacher_data_whatever_the_mode(mode):
    result = mix(TEACHER, [], mode=mode, first_iteration=True)
    assert result.records == TEACHER and result.alpha == 1.0
    assert (result.fallback is not None) == (mode == "student")  # only `student` departs from its mode


def test_student_mode_falls_back_to_teacher_data_when_the_student_solved_nothing():
    result = mix(TEACHER, [], mode="student")
    assert result.records == TEACHER and result.teacher_count == len(TEACHER) and result.alpha == 1.0
    assert "solved no training question" in result.fallback
    assert mix(TEACHER, [stu("q1", "pot", "answer = 1 * 1")], mode="student").fallback is None


# Two kept teacher solutions per question and strategy (teacher.keep_per_strategy = 2).
TWO_EACH = TEACHER + [sol(t.problem_id, t.strategy, t.solution + " again") for t in TEACHER]


@pytest.mark.parametrize("cap", [1, 2])
def test_siked_and_the_baselines_see_the_same_teacher_data(cap):
    first = mix(TWO_EACH, [], mode="adaptive", max_per_strategy=cap, first_iteration=True).records
    assert first == select_teacher(TWO_EACH, cap)  # the combined baseline's data
    assert len(first) == cap * len(TEACHER)
    for name in ("cot", "l2m", "pot"):  # a single-strategy baseline: that strategy's share of the same
        assert select_teacher(TWO_EACH, cap, [name]) == [r for r in first if r.strategy == name]
