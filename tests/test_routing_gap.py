"""Room for routing: the best single strategy and the oracle gap (oracle minus best single strategy), per
evaluation set and per template, from forced-strategy verdicts to routing.json, the run report and
`siked compare`."""

import json

import pytest

from siked.evaluation import routing
from siked.io import write_json
from siked.metrics import RoutingResult, load_metrics
from siked.records import Problem, Verdict
from siked.report import compare_runs, write_report
from test_report import TEST_SET, full_metrics, make_run, section, table_row

# template 3: PoT solves all four questions, CoT and L2M none. template 7: CoT solves half (b0, b1),
# L2M one question CoT misses (b2), PoT none.
SOLVED = {"pot": {"a0", "a1", "a2", "a3"}, "cot": {"b0", "b1"}, "l2m": {"b2"}}
TEMPLATES = {"a0": 3, "a1": 3, "a2": 3, "a3": 3, "b0": 7, "b1": 7, "b2": 7, "b3": 7}


def templated_problems() -> list[Problem]:
    return [Problem(id=pid, question=f"question {pid}", answer=1.0, answer_text="1", source="gsm_symbolic",
                    split="test", meta={"template": template}) for pid, template in TEMPLATES.items()]


def forced_verdicts() -> dict[str, list[Verdict]]:
    return {strategy: [Verdict(problem_id=pid, strategy=strategy, status="ok", correct=pid in solved)
                       for pid in TEMPLATES] for strategy, solved in SOLVED.items()}


def test_oracle_gap_per_set_and_per_template_from_hand_made_verdicts():
    table = RoutingResult.read(routing(templated_problems(), forced_verdicts()))

    # the whole set: PoT 4/8 is the best single strategy, the oracle solves 7/8: 37.5 points left
    assert (table.best_single_strategy, table.best_single_accuracy) == ("pot", 0.5)
    assert table.oracle_accuracy == 0.875
    assert table.oracle_gap == pytest.approx(0.375)
    assert list(table.by_template) == ["template 3", "template 7"]

    pot_only = table.by_template["template 3"]
    assert (pot_only.questions, pot_only.best_single_strategy, pot_only.best_single_accuracy) == (4, "pot", 1.0)
    assert pot_only.oracle_accuracy == 1.0 and pot_only.oracle_gap == 0.0  # nothing left for routing
    assert pot_only.forced_accuracy == {"pot": 1.0, "cot": 0.0, "l2m": 0.0}

    cot_half = table.by_template["template 7"]
    assert (cot_half.best_single_strategy, cot_half.best_single_accuracy) == ("cot", 0.5)
    assert cot_half.oracle_accuracy == 0.75 and cot_half.oracle_gap == pytest.approx(0.25)


def test_a_set_without_templates_is_one_group_named_by_its_source():
    problems = [Problem(id=pid, question="q", answer=1.0, answer_text="1", source="gsm8k", split="test")
                for pid in TEMPLATES]
    table = RoutingResult.read(routing(problems, forced_verdicts()))
    assert list(table.by_template) == ["gsm8k"]
    assert table.by_template["gsm8k"].oracle_gap == table.oracle_gap


def test_routing_json_reads_back_and_older_records_still_load(tmp_path):
    path = tmp_path / "routing.json"
    write_json(path, {TEST_SET: routing(templated_problems(), forced_verdicts())})
    read = RoutingResult.read(json.loads(path.read_text())[TEST_SET])
    assert read.by_template["template 7"].gap() == pytest.approx(0.25)
    assert read.gap() == pytest.approx(0.375)

    older = {"questions": 32, "oracle_accuracy": 0.5, "best_single_accuracy": 0.375,
             "solved_by": {"cot": 10}, "only_by": {"cot": 2}, "forced_accuracy": {"cot": 0.3125}}
    old = RoutingResult.read(older)
    assert old.oracle_gap is None and old.by_template == {}
    assert old.gap() == pytest.approx(0.125)  # computed from the two accuracies it recorded
    assert RoutingResult.read({"questions": 3}).gap() is None


def run_with_routing(root):
    """A run whose metrics.json holds routing.json as the loop copies it in."""
    root.mkdir()
    metrics = full_metrics()
    metrics["routing"] = {TEST_SET: json.loads(json.dumps(routing(templated_problems(), forced_verdicts())))}
    return make_run(root, metrics)


def test_run_report_shows_the_gap_per_set_and_per_template(tmp_path):
    run_dir = run_with_routing(tmp_path / "a")
    assert load_metrics(run_dir).routing[TEST_SET].oracle_gap == pytest.approx(0.375)
    markdown = write_report(run_dir)[0].read_text(encoding="utf-8")
    routing_part = section(markdown, "Strategy routing")
    assert "Oracle gap (points)" in routing_part
    assert table_row(routing_part, f"{TEST_SET} | 8").endswith("| pot 50.0% | 87.5% | 37.5 |")
    assert table_row(routing_part, f"{TEST_SET} | template 3").endswith("| pot 100.0% | 100.0% | 0.0 |")
    assert table_row(routing_part, f"{TEST_SET} | template 7").endswith("| cot 50.0% | 75.0% | 25.0 |")


def test_compare_routing_table_shows_the_gap(tmp_path):
    markdown = compare_runs([run_with_routing(tmp_path / "a")])
    routing_part = markdown.split("## Routing", 1)[1].split("\n## ", 1)[0]
    assert "| best single | oracle | oracle gap (points) |" in routing_part
    rows = {line.split(" | ")[2]: line for line in routing_part.splitlines() if line.startswith("| run |")}
    assert rows[TEST_SET].endswith("| pot 50.0% | 87.5% | 37.5 |")
    assert rows[f"{TEST_SET} · template 3 (n=4)"].endswith("| pot 100.0% | 100.0% | 0.0 |")
    assert rows[f"{TEST_SET} · template 7 (n=4)"].endswith("| cot 50.0% | 75.0% | 25.0 |")


def test_older_routing_records_show_a_gap_from_their_accuracies(tmp_path):
    (tmp_path / "a").mkdir()
    metrics = full_metrics()
    metrics["routing"][TEST_SET]["best_single_accuracy"] = 0.375  # as routing() wrote it before the gap
    markdown = compare_runs([make_run(tmp_path / "a", metrics)])
    line = next(line for line in markdown.splitlines() if line.startswith(f"| run | 2 | {TEST_SET} |"))
    assert line.endswith("| 37.5% | 50.0% | 12.5 |")
