"""`siked teach` as a user runs it: real subprocesses, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from siked.config import load_config
from teachers_fake_server import FakeOpenAIServer

SIKED = [sys.executable, "-m", "siked.cli"]


def siked(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SIKED, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_embedded_default_runs_offline_with_the_reference_teacher(tmp_path):
    result = siked("teach", "--out", str(tmp_path / "t"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "t" / "teacher.jsonl")
    assert "not an LLM" in " ".join(result.stderr.split())
    stats = json.loads((tmp_path / "t" / "teacher_stats.json").read_text())
    assert stats["reference_solutions"] is True and stats["backend"] == "reference"
    embedded_limit = load_config().data.train.limit  # `teach` solves the whole embedded training set
    assert stats["problems"] == embedded_limit and set(stats["by_strategy"]) == {"cot", "l2m", "pot"}
    for row in stats["by_strategy"].values():
        assert set(row) >= {"attempted", "correct", "kept", "solve_rate"}
    assert {"oracle_coverage", "requests", "retries", "prompt_tokens", "completion_tokens", "cost"} <= set(stats)
    kept = [json.loads(line) for line in (tmp_path / "t" / "teacher.jsonl").read_text().splitlines()]
    assert len(kept) == stats["kept"] > 0
    assert {"problem_id", "strategy", "solution"} <= set(kept[0]) and kept[0]["origin"] == "teacher:reference"


def test_flags_choose_data_strategies_and_output(tmp_path):
    result = siked("teach", "--limit", "5", "--strategies", "pot,cot", "--out", "o", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "o" / "teacher_stats.json").read_text())
    assert stats["problems"] == 5 and stats["strategies"] == ["pot", "cot"]


def test_openai_teacher_from_the_command_line_resumes_for_free(tmp_path):
    with FakeOpenAIServer() as server:
        args = ["teach", "--teacher", "openai", "--base-url", server.url, "--model", "fake-model", "--samples", "2",
                "--limit", "3", "--strategies", "cot,l2m", "--out", "t", "--set", "teacher.openai.backoff_base_s=0.01"]
        first = siked(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        sent = server.total_requests
        second = siked(*args, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert server.total_requests == sent  # the rerun sent nothing
    stats = json.loads((tmp_path / "t" / "teacher_stats.json").read_text())
    assert stats["requests"] == 0 and stats["cached_completions"] == 3 * 2 * 2
    assert stats["ledger_all_runs"]["total"]["requests"] == sent
    assert (tmp_path / "t" / "teacher_completions.jsonl").is_file()


def test_bad_input_gives_one_clear_line(tmp_path):
    cases = [
        (["teach", "--teacher", "oracle"], "backend"),
        (["teach", "--strategies", "cot,magic"], "unknown strategy 'magic'"),
        (["teach", "--data", "nope:train"], "unknown dataset 'nope'"),
        (["teach", "--teacher", "openai"], "needs teacher.openai.base_url"),
        (["teach", "--teacher", "file", "--set", "teacher.file.path=missing.jsonl"], "missing.jsonl: no such file"),
        (["teach", "--model", "some/model"], "--model: the reference teacher runs no model"),
        (["teach", "--teacher", "hf", "--model", "/no/such/model"], "hf teacher: "),  # reached teacher.local.model
    ]
    for args, message in cases:
        result = siked(*args, "--out", "o", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
        assert "Traceback" not in result.stderr
