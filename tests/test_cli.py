"""The `siked data` and `siked grade` commands on real files."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siked.cli import app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K_TEST = SHARED / "gsm8k" / "test.jsonl"
needs_gsm8k = pytest.mark.skipif(not GSM8K_TEST.exists(), reason="../shared/data/gsm8k is absent")

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@needs_gsm8k
def test_data_json_on_real_gsm8k():
    result = invoke("data", "gsm8k:test", "--data-file", str(GSM8K_TEST), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 1319
    assert summary["numeric_gold"] == 1319
    assert summary["example"]["id"] == "gsm8k/test/0"
    assert summary["example"]["answer"] == 18.0
    assert len(summary["example"]["sub_questions"]) == 2


def test_data_on_the_embedded_dataset_with_limit():
    result = invoke("data", "gsm_symbolic:train", "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 3


def test_data_bad_spec_is_a_clear_error():
    result = invoke("data", "gsm9k:test")
    assert result.exit_code == 2
    assert "unknown dataset 'gsm9k'" in result.output
    result = invoke("data", "gsm8k:test", "--data-file", "/nonexistent/test.jsonl")
    assert result.exit_code == 2
    assert "/nonexistent/test.jsonl" in result.output


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@needs_gsm8k
def test_grade_json_and_verdicts(tmp_path: Path):
    solutions = write_rows(tmp_path / "s.jsonl", [
        {"problem_id": "gsm8k/test/0", "strategy": "pot", "solution": "eggs = 16 - 3 - 4\nanswer = eggs * 2"},
        {"problem_id": "gsm8k/test/0", "strategy": "cot", "solution": "9 eggs at $2 make $18.\nThe answer is 18."},
        {"problem_id": "gsm8k/test/1", "strategy": "l2m", "solution": "Sub-question 1: Blue?\nAnswer to Sub-question 1: 2.\nThe answer is 4."},
        {"problem_id": "gsm8k/test/2", "strategy": "pot", "solution": "while True:\n    pass\nanswer = 1"},
        {"problem_id": "gsm8k/test/3", "strategy": "cot", "solution": "I do not know."},
    ])
    out = tmp_path / "verdicts.jsonl"
    result = invoke("grade", str(solutions), "--data", "gsm8k:test", "--data-file", str(GSM8K_TEST),
                    "--out", str(out), "--json", "--set", "sandbox.timeout_s=1", "--set", "sandbox.workers=2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["total"] == 5 and summary["correct"] == 2
    assert summary["by_strategy"]["pot"] == {"total": 2, "correct": 1, "accuracy": 0.5}
    assert summary["by_strategy"]["l2m"]["correct"] == 0
    assert summary["by_status"] == {"no_answer": 1, "ok": 3, "timeout": 1}
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["status"] for v in verdicts] == ["ok", "ok", "ok", "timeout", "no_answer"]
    assert verdicts[0]["predicted"] == 18.0 and verdicts[0]["correct"]


@needs_gsm8k
def test_grade_reports_bad_rows_by_line(tmp_path: Path):
    solutions = write_rows(tmp_path / "s.jsonl", [
        {"problem_id": "gsm8k/test/0", "strategy": "cot", "solution": "The answer is 18."},
        {"problem_id": "gsm8k/test/99999", "strategy": "cot", "solution": "The answer is 1."},
        {"problem_id": "gsm8k/test/1", "strategy": "tot", "solution": "The answer is 3."},
    ])
    result = invoke("grade", str(solutions), "--data", "gsm8k:test", "--data-file", str(GSM8K_TEST))
    assert result.exit_code == 2
    assert "s.jsonl:2: unknown problem_id 'gsm8k/test/99999'" in result.output
    assert "s.jsonl:3: unknown strategy 'tot'" in result.output

    broken = write_rows(tmp_path / "broken.jsonl", [
        {"problem_id": "gsm8k/test/0", "strategy": "cot", "solution": "The answer is 18."},
        '{"problem_id": "gsm8k/test/1", "strategy": ',
    ])
    result = invoke("grade", str(broken), "--data", "gsm8k:test", "--data-file", str(GSM8K_TEST))
    assert result.exit_code == 2 and "broken.jsonl:2: not valid JSON" in result.output

    missing = write_rows(tmp_path / "missing.jsonl", [{"problem_id": "gsm8k/test/0", "strategy": "cot"}])
    result = invoke("grade", str(missing), "--data", "gsm8k:test", "--data-file", str(GSM8K_TEST))
    assert result.exit_code == 2 and "missing.jsonl:1: field 'solution'" in result.output


def test_bad_config_override_names_the_field(tmp_path: Path):
    solutions = write_rows(tmp_path / "s.jsonl", [
        {"problem_id": "gsm_symbolic/test/0", "strategy": "cot", "solution": "The answer is 1."},
    ])
    result = invoke("grade", str(solutions), "--data", "gsm_symbolic:test", "--set", "sandbox.timeout_s=-1")
    assert result.exit_code == 2
    assert "sandbox.timeout_s" in result.output


def test_every_command_has_help():
    for command in ("data", "grade", "run", "eval", "report"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Usage" in result.output


@needs_gsm8k
def test_grade_accepts_untagged_student_rows_as_invalid(tmp_path: Path):
    solutions = write_rows(tmp_path / "s.jsonl", [
        {"problem_id": "gsm8k/test/0", "strategy": "none", "solution": "I think it is 18"},
        {"problem_id": "gsm8k/test/0", "strategy": "cot", "solution": "No number here."},
    ])
    result = invoke("grade", str(solutions), "--data", "gsm8k:test", "--data-file", str(GSM8K_TEST), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["by_status"] == {"invalid": 1, "no_answer": 1}
    assert summary["by_strategy"]["none"] == {"total": 1, "correct": 0, "accuracy": 0.0}


def test_eval_of_a_run_without_a_chosen_model_is_a_clean_error(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"stages": {}}))
    (run_dir / "metrics.json").write_text(json.dumps({"iterations": [], "best_model": None}))
    result = runner.invoke(app, ["eval", str(run_dir), "--data", "gsm_symbolic:test", "--limit", "1"])
    assert result.exit_code == 2
    assert "has chosen no model yet" in result.output and str(run_dir) in result.output
