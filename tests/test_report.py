import base64
import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siked.cli import app
from siked.config import SikedConfig, dump_config
from siked.report import ReportError, compare_runs, wilson_interval, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEST_SET = "gsm_symbolic:test"


def evaluation(correct: int, total: int, dist: dict[str, float], by_strategy: dict[str, tuple[int, int]]):
    return {
        "total": total,
        "correct": correct,
        "accuracy": correct / total,
        "by_strategy": {
            s: {"total": t, "correct": c, "accuracy": c / t} for s, (c, t) in by_strategy.items()
        },
        "strategy_distribution": dist,
        "by_status": {"ok": total - 1, "no_answer": 1},
    }


def iteration(n: int, alpha: float, val: tuple[int, int], test: tuple[int, int], kl: float):
    teacher = round(119 * alpha)
    return {
        "iteration": n,
        "train": {
            "examples": 119, "teacher_count": teacher, "student_count": 119 - teacher,
            "alpha": alpha, "strategy_counts": {"cot": 40 + n, "l2m": 38, "pot": 41 + 5 * n},
            "train_loss": 0.9 / n, "steps": 45, "tokens_per_s": 260.0,
        },
        "eval": {
            "validation": evaluation(*val, {"cot": 0.5, "l2m": 0.125, "pot": 0.375, "none": 0.0},
                                     {"cot": (2, 4), "l2m": (0, 1), "pot": (val[0] - 2, 3)}),
            TEST_SET: evaluation(*test, {"cot": 0.4, "l2m": 0.2, "pot": 0.35, "none": 0.05},
                                 {"cot": (4, 13), "l2m": (2, 6), "pot": (test[0] - 6, 11)}),
        },
        "student": {"strategy_counts": {"cot": 120, "pot": 60 + 10 * n, "l2m": 20}, "samples": 200,
                    "correct": 45 + n, "solved_questions": 20 + n, "questions": 50},
        "kl_train_samples": kl,
        "kl_train_validation": 2 * kl,
    }


def full_metrics(reference: bool = True) -> dict:
    baseline_train = {"examples": 119, "teacher_count": 119, "student_count": 0, "alpha": 1.0}
    return {
        "run": {"out": "runs/demo", "teacher_backend": "reference", "reference_solutions": reference,
                "student_model": "embedded:smollm2", "mixing": {"line": "unbiased", "mode": "adaptive", "max_per_strategy": 1,
                                                                "priority": ["pot", "cot", "l2m"]},
                "started": "2026-11-22T10:00:00", "finished": "2026-11-22T10:13:32", "wall_s": 812.3},
        "teacher": {"strategy_counts": {"cot": 40, "l2m": 38, "pot": 41},
                    "by_strategy": {"cot": {"attempted": 50, "correct": 40, "kept": 40, "solve_rate": 0.8},
                                    "l2m": {"attempted": 50, "correct": 38, "kept": 38, "solve_rate": 0.76},
                                    "pot": {"attempted": 50, "correct": 41, "kept": 41, "solve_rate": 0.82}},
                    "oracle_coverage": 0.96},
        "iterations": [
            iteration(1, 1.0, (3, 8), (9, 32), 0.42),
            iteration(2, 0.55, (5, 8), (13, 32), 0.1),
            iteration(3, 0.4, (4, 8), (14, 32), 0.05),
        ],
        "best_iteration": 2,
        "stopped": "patience",
        "baselines": {
            name: {"train": baseline_train,
                   "eval": {"validation": evaluation(c, 8, {name if name != "combined" else "cot": 1.0}, {}),
                            TEST_SET: evaluation(t, 32, {}, {})},
                   "checkpoints": [{"step": 45, "validation": (c - 1) / 8}, {"step": 90, "validation": c / 8},
                                   {"step": 135, "validation": c / 8}],
                   "chosen_step": 90, "budget": "equal_steps"}
            for name, c, t in [("combined", 4, 11), ("cot", 3, 8), ("l2m", 2, 7), ("pot", 3, 10)]
        },
        "routing": {TEST_SET: {"questions": 32, "oracle_accuracy": 0.5,
                               "solved_by": {"cot": 10, "l2m": 8, "pot": 12},
                               "only_by": {"cot": 2, "l2m": 1, "pot": 4},
                               "forced_accuracy": {"cot": 0.3125, "l2m": 0.25, "pot": 0.375}}},
    }


def make_run(root: Path, metrics: dict | None, config: bool = True) -> Path:
    run_dir = root / "run"
    run_dir.mkdir()
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if config:
        (run_dir / "config.yaml").write_text(dump_config(SikedConfig(out=run_dir)))
    return run_dir


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> tuple[Path, str, str]:
    run_dir = make_run(tmp_path_factory.mktemp("full"), full_metrics())
    md_path, html_path = write_report(run_dir)
    assert (md_path, html_path) == (run_dir / "report.md", run_dir / "report.html")
    return run_dir, md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")


def section(markdown: str, title: str) -> str:
    """The Markdown of one `## title...` section."""
    return markdown.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def table_row(markdown: str, first_cell: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, f"expected one row starting with {first_cell!r}, got {rows}"
    return rows[0]


def test_html_is_self_contained(full_report):
    run_dir, markdown, page = full_report
    assert len(page.encode("utf-8")) < 2_000_000
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 7  # accuracy, baselines, validation curves, alpha, kl, strategy mix, strategy choice
    for tag in images:
        uri = re.search(r'src="([^"]+)"', tag).group(1)
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == PNG_SIGNATURE
    # The Markdown references the same plots as files under plots/.
    referenced = re.findall(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", markdown)
    assert len(referenced) == len(images)
    for relative in referenced:
        assert (run_dir / relative).read_bytes()[:8] == PNG_SIGNATURE


def test_tables_hold_the_right_numbers(full_report):
    _, markdown, page = full_report
    accuracy = section(markdown, "Accuracy per iteration")
    best = table_row(accuracy, "2 ★")
    assert "62.5% (5/8)" in best and "40.6% (13/32)" in best
    assert "37.5% (3/8)" in table_row(accuracy, "1")
    assert "chosen on the `validation` split only" in markdown
    # Baselines next to SIKeD's best iteration.
    assert "34.4% (11/32)" in table_row(markdown, "baseline: combined")
    assert "| baseline: combined | 119 | 90 |" in markdown  # the step validation chose
    assert "SIKeD's total optimizer steps (`loop.budget: equal_steps`)" in markdown
    siked = table_row(markdown, "SIKeD unbiased adaptive (iteration 2)")
    assert "62.5% (5/8)" in siked and "40.6% (13/32)" in siked
    # Routing: actual vs forced vs oracle.
    routing = [line for line in markdown.splitlines() if line.startswith(f"| {TEST_SET} | 32 |")]
    assert len(routing) == 1
    assert all(cell in routing[0] for cell in ("40.6% (13/32)", "31.2%", "37.5%", "50.0%"))
    assert f"| {TEST_SET} | 10 (2 only) | 8 (1 only) | 12 (4 only) |" in markdown
    # Per-strategy accuracy at the best iteration.
    assert f"| {TEST_SET} | pot | 35.0% | 7/11 | 63.6% |" in markdown
    # Header, config and the same numbers in the HTML.
    assert "13 min 32 s" in markdown and "unbiased line, adaptive mixing (max_per_strategy: 1)" in markdown
    assert "| Method | SIKeD unbiased adaptive |" in markdown
    assert "<details>" in markdown and "lora_r: 16" in markdown
    for text in ("62.5% (5/8)", "0.55", "34.4% (11/32)", "<details><summary>", "lora_r: 16"):
        assert text in page
    assert "Missing" not in markdown.split("## Accuracy")[0]


def test_training_table_lists_alpha_per_iteration(full_report):
    _, markdown, _ = full_report
    training = section(markdown, "Training data per iteration")
    rows = {line.split(" | ")[0]: line for line in training.splitlines() if line.startswith("| ")}
    assert "| 1.00 |" in rows["| 1"] and "| 0.55 |" in rows["| 2"] and "| 0.40 |" in rows["| 3"]
    assert "| 0.100 | 0.200 |" in rows["| 2"]  # KL(train || free samples), KL(train || greedy validation)


@pytest.mark.parametrize("reference", [True, False])
def test_reference_notice_iff_reference_solutions(tmp_path, reference):
    metrics = full_metrics(reference)
    metrics.pop("baselines")  # keep the run short; the notice does not depend on them
    md_path, html_path = write_report(make_run(tmp_path, metrics))
    notice = "teacher data came from the datasets' reference solutions, not an llm"
    assert (notice in md_path.read_text().lower()) is reference
    assert (notice in html_path.read_text().lower()) is reference


def test_partial_metrics_render_and_say_what_is_missing(tmp_path):
    metrics = {"run": {"teacher_backend": "reference"},
               "iterations": [{"iteration": 1, "train": {"examples": 64, "alpha": 1.0,
                                                         "strategy_counts": {"cot": 30, "pot": 34}}}]}
    run_dir = make_run(tmp_path, metrics, config=False)
    md_path, html_path = write_report(run_dir)
    markdown = md_path.read_text()
    missing = section(markdown, "Missing")
    for item in ("evaluation results for iteration(s) 1", "baselines", "routing analysis",
                 "student samples for iteration(s) 1", "config.yaml", "finish time"):
        assert item in missing
    assert "| 1 | not evaluated |" not in markdown  # no dataset columns at all yet
    assert "No evaluation results yet." in markdown
    assert "No baselines in metrics.json" in markdown
    assert "| 1 | 64 |" in markdown and "| 1.00 |" in markdown
    assert "| Teacher data | — |" in markdown  # not recorded: neither claimed nor denied
    page = html_path.read_text()
    assert page.count("<img ") == 2  # α and the strategy mix
    assert "Missing" in page


def test_a_finished_run_misses_nothing_it_did_not_plan(tmp_path):
    metrics = full_metrics()
    metrics["iterations"][-1].pop("student")  # the loop samples nothing after its last iteration
    metrics["stopped"] = "max_iterations (3)"
    metrics.pop("routing")
    metrics["run"].update(baselines=["combined", "cot", "l2m", "pot"], routing=False)
    markdown = write_report(make_run(tmp_path, metrics))[0].read_text()
    assert "## Missing" not in markdown
    assert "| Stopped because | max_iterations (3) |" in markdown
    metrics["run"]["baselines"] = ["combined", "pot", "cot", "l2m", "l2m"]
    metrics["baselines"].pop("pot")
    metrics["stopped"] = None
    (tmp_path / "again").mkdir()
    missing = section(write_report(make_run(tmp_path / "again", metrics))[0].read_text(), "Missing")
    assert "baselines pot (not finished yet)" in missing and "student samples for iteration(s) 3" in missing


def test_run_without_iterations_renders(tmp_path):
    md_path, html_path = write_report(make_run(tmp_path, {"iterations": []}))
    markdown = md_path.read_text()
    assert "iterations: none recorded yet" in section(markdown, "Missing")
    assert "No iterations recorded yet." in section(markdown, "Accuracy per iteration")
    assert "<img " not in html_path.read_text()


def test_partial_eval_keeps_other_iterations(tmp_path):
    metrics = full_metrics()
    del metrics["iterations"][2]["eval"], metrics["best_iteration"], metrics["run"]["finished"]
    md_path, _ = write_report(make_run(tmp_path, metrics))
    markdown = md_path.read_text()
    accuracy = section(markdown, "Accuracy per iteration")
    assert "not evaluated" in table_row(accuracy, "3")
    assert "62.5% (5/8)" in table_row(accuracy, "2 ★")  # picked by validation accuracy
    assert "highest validation accuracy so far" in markdown
    assert "evaluation results for iteration(s) 3" in markdown


def test_missing_run_dir_or_metrics_name_the_path(tmp_path):
    with pytest.raises(ReportError, match="does not exist") as info:
        write_report(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    run_dir = make_run(tmp_path, None)
    with pytest.raises(ReportError, match="metrics.json does not exist"):
        write_report(run_dir)


def test_malformed_metrics_name_the_file_and_field(tmp_path):
    run_dir = make_run(tmp_path, None)
    path = run_dir / "metrics.json"
    path.write_text('{"iterations": [\n  {"iteration": 1,}\n]}')
    with pytest.raises(ReportError, match="not valid JSON") as info:
        write_report(run_dir)
    assert str(path) in str(info.value) and "line 2" in str(info.value)

    broken = copy.deepcopy(full_metrics())
    broken["iterations"][1]["train"]["alpha"] = "lots"
    path.write_text(json.dumps(broken))
    with pytest.raises(ReportError, match=r"iterations\.1\.train\.alpha") as info:
        write_report(run_dir)
    assert str(path) in str(info.value)

    path.write_text(json.dumps({"run": {}}))
    with pytest.raises(ReportError, match="iterations"):
        write_report(run_dir)
    assert not (run_dir / "report.md").exists()


def test_cli_report_prints_the_paths(tmp_path):
    metrics = full_metrics()
    metrics.pop("baselines")
    run_dir = make_run(tmp_path, metrics)
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert str(run_dir / "report.md") in result.output
    assert str(run_dir / "report.html") in result.output
    assert (run_dir / "report.html").is_file()


def test_cli_report_missing_dir_fails_cleanly(tmp_path):
    missing = tmp_path / "absent"
    result = CliRunner().invoke(app, ["report", str(missing)])
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "error:" in output and "does not exist" in output and "absent" in output
    assert "Traceback" not in output


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 40)[0] == 0.0 and round(wilson_interval(0, 40)[1], 4) == 0.0876
    assert round(wilson_interval(40, 40)[0], 4) == 0.9124 and wilson_interval(40, 40)[1] == 1.0


def test_compare_puts_runs_side_by_side(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_run(tmp_path / "a", full_metrics())
    other_metrics = full_metrics()
    other_metrics["iterations"] = other_metrics["iterations"][:1]
    other_metrics["best_iteration"] = 1
    other_metrics["baselines"] = {}
    second = make_run(tmp_path / "b", other_metrics)
    markdown = compare_runs([first, second])
    rows = [line for line in markdown.splitlines() if line.startswith("| run |")]
    assert rows[0] == f"| run | model | training steps (cumulative) | examples | α | validation | {TEST_SET} |"
    iteration_rows = [line for line in markdown.splitlines() if "| SIKeD iteration" in line]
    assert len(iteration_rows) == 2 * 4  # accuracy and choices: three iterations of one run, one of the other
    label = str(first)  # both directories are called "run": labelled by their paths
    assert f"| {label} | SIKeD iteration 2 ★ | 90 | 119 | 0.55 | 62.5% (5/8) [30.6–86.3] | 40.6% (13/32)" in markdown
    assert f"| {label} | SIKeD iteration 3 | 135 |" in markdown
    assert f"| {second} | SIKeD iteration 1 ★ | 45 |" in markdown
    assert f"| {label} | combined baseline | — | 119 | 1.00 | 50.0% (4/8) [21.5–78.5] | 34.4% (11/32)" in markdown
    assert f"| {label} | SIKeD iteration 1 | cot 32.8% · l2m 30.4% · pot 36.8% | cot 50.0% · l2m 12.5% · pot 37.5% · none 0.0% |" in markdown


def test_cli_compare_writes_markdown_and_names_a_missing_run(tmp_path):
    run_dir = make_run(tmp_path, full_metrics())
    out = tmp_path / "compare.md"
    result = CliRunner().invoke(app, ["compare", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("## Accuracy")
    result = CliRunner().invoke(app, ["compare", str(run_dir), str(tmp_path / "absent")])
    assert result.exit_code != 0 and "absent" in result.output and "does not exist" in result.output


def test_run_without_validation_names_its_rule_and_fallbacks(tmp_path):
    from siked.metrics import BEST_IS_LAST

    metrics = full_metrics()
    for it in metrics["iterations"]:
        it["eval"].pop("validation")
    metrics["iterations"][0]["train"]["fallback"] = "iteration 1: teacher data (the student has no solutions yet)"
    metrics.update(best_iteration=3, best_rule=BEST_IS_LAST)
    metrics["run"]["validation_fraction"] = 0.0
    markdown = write_report(make_run(tmp_path, metrics))[0].read_text()
    assert f"| Best iteration | 3 (chosen by {BEST_IS_LAST}) |" in markdown
    assert "; with no validation set, the last iteration (3) is the model." in section(markdown, "Run")
    assert "validation results" not in markdown  # none was planned: nothing is missing
    training = section(markdown, "Training data per iteration")
    assert "Fallback to teacher data: Iteration 1: iteration 1: teacher data" in training


def test_first_screen_says_in_one_sentence_what_happened(full_report):
    _, markdown, html = full_report
    run_section = section(markdown, "Run")
    first_paragraph = run_section.strip().split("\n\n")[0]
    assert first_paragraph == (
        "Over 3 iteration(s), α (the teacher's share of the training mix) went 1.00 → 0.55 → 0.40, "
        "the student solved 42.0% → 44.0% → 46.0% of its training questions in its own samples and "
        f"`{TEST_SET}` accuracy went 28.1% → 40.6% → 43.8%; validation chose iteration 2."
    )
    assert "1.00 → 0.55 → 0.40" in html


def test_summary_marks_what_an_iteration_lacks(tmp_path):
    metrics = full_metrics()
    del metrics["iterations"][2]["student"]
    del metrics["iterations"][1]["eval"][TEST_SET]
    md_path, _ = write_report(make_run(tmp_path, metrics))
    first_paragraph = section(md_path.read_text(encoding="utf-8"), "Run").strip().split("\n\n")[0]
    assert "42.0% → 44.0% → —" in first_paragraph
    assert "28.1% → — → 43.8%" in first_paragraph
