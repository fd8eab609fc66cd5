"""The `openai` teacher against a real, fault-injecting HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from siked.config import SikedConfig, TeacherConfig
from siked.records import Problem
from siked.strategies import format_l2m
from siked.teachers import CompletionLog, SolveContext, TeacherError, teach
from siked.teachers.openai_client import OpenAITeacher, backoff_delay, parse_retry_after
from teachers_fake_server import FAULTS, FakeOpenAIServer, last_question

STRATEGIES = ["cot", "l2m", "pot"]


def make_problems(count: int) -> list[Problem]:
    return [
        Problem(
            id=f"toy/train/{i}", question=f"Tom has {i + 2} apples and buys {3 * i + 1} more. How many apples does he have?",
            answer=float(4 * i + 3), answer_text=str(4 * i + 3), source="toy", split="train",
        )
        for i in range(count)
    ]


def fault_plan(seed: int = 0, share: float = 0.6):
    """Deterministic per request body: each attempt faults with probability `share`, at most twice."""

    def plan(body_hash: str, attempt: int) -> str | None:
        if attempt >= 2:
            return None
        rng = random.Random(f"{seed}:{body_hash}:{attempt}")
        return rng.choice(FAULTS) if rng.random() < share else None

    return plan


def teacher_config(url: str, **overrides) -> TeacherConfig:
    """An openai teacher's config; each override goes to `teacher` or, when it is the server's, `teacher.openai`."""
    settings = dict(
        base_url=url, model="fake-model", samples=3, concurrency=8,
        backoff_base_s=0.01, backoff_max_s=0.05, request_timeout_s=0.5, max_retries=6,
    )
    settings.update(overrides)
    shared = {key: settings.pop(key) for key in list(settings) if key in TeacherConfig.model_fields}
    return TeacherConfig(backend="openai", **shared, openai=settings)


def solve(config: TeacherConfig, problems: list[Problem], log_path: Path, strategies=("cot", "pot")):
    context = SolveContext(strategies=list(strategies), samples=config.samples, log_path=log_path, say=lambda _: None)
    teacher = OpenAITeacher(config)
    solutions = teacher.solve(problems, context)
    return solutions, context.ledger, teacher


def test_every_question_gets_its_completions_through_faults_and_the_ledger_adds_up(tmp_path):
    problems = make_problems(12)
    log_path = tmp_path / "log.jsonl"
    with FakeOpenAIServer(plan=fault_plan(), retry_after="0.05", slow_s=0.8) as server:
        solutions, ledger, _ = solve(teacher_config(server.url), problems, log_path)
        assert set(server.faults) >= {"429", "500", "drop", "truncated", "cut", "slow"}

        assert len(solutions) == len(problems) * 2 * 3
        per_pair = {(s.problem_id, s.strategy) for s in solutions}
        assert len(per_pair) == len(problems) * 2
        served_texts = sorted(text for served in server.served for text in served.texts)
        assert sorted(s.solution for s in solutions) == served_texts  # each served completion saved once

        total = ledger.total()
        failed_attempts = sum(count for fault, count in server.faults.items() if fault != "delay")
        assert total.requests == len(server.served)
        assert total.retries == failed_attempts == server.total_requests - len(server.served)
        assert total.prompt_tokens == sum(s.prompt_tokens for s in server.served)
        assert total.completion_tokens == sum(s.completion_tokens for s in server.served)
        assert total.completions == len(solutions) and total.failed_requests == 0
        assert sum(e.requests for e in ledger.by_strategy.values()) == total.requests

        # A rerun sends nothing and returns the same solutions from the log.
        before = server.total_requests
        again, ledger2, teacher = solve(teacher_config(server.url), problems, log_path)
        assert server.total_requests == before
        assert [s.solution for s in again] == [s.solution for s in solutions]
        assert ledger2.total().cached_completions == len(solutions) and ledger2.total().requests == 0
        assert teacher.log_ledger.total().prompt_tokens == total.prompt_tokens  # what the data cost overall


def test_server_without_n_gets_one_seeded_request_per_sample(tmp_path):
    problems = make_problems(3)
    with FakeOpenAIServer(supports_n=False) as server:
        solutions, ledger, _ = solve(teacher_config(server.url, samples=4), problems, tmp_path / "log.jsonl")
        assert len(solutions) == 3 * 2 * 4
        # The first requests asked for n=4 and got one choice; everything after is single-sample.
        assert {s.n for s in server.served} <= {1, 4}
        single = [s for s in server.served if s.n == 1]
        assert len(single) == len(server.served) - sum(1 for s in server.served if s.n == 4)
        seeds = [(s.hash, s.seed) for s in server.served]
        assert len({seed for _, seed in seeds}) == len(seeds)  # every sample has its own seed
        assert ledger.total().requests == len(server.served) == len(solutions)


def test_server_rejecting_n_falls_back_to_separate_requests(tmp_path):
    with FakeOpenAIServer(reject_n=True) as server:
        solutions, _, _ = solve(teacher_config(server.url, samples=2), make_problems(2), tmp_path / "log.jsonl")
        assert len(solutions) == 2 * 2 * 2
        assert all(s.n == 1 for s in server.served)


def test_completions_endpoint_and_model_discovery(tmp_path):
    with FakeOpenAIServer() as server:
        config = teacher_config(server.url, endpoint="completions", model=None, samples=1)
        solutions, _, teacher = solve(config, make_problems(2), tmp_path / "log.jsonl")
        assert teacher.model_name == "fake-model"  # from GET /v1/models
        assert len(solutions) == 4


def test_retry_after_is_honoured(tmp_path):
    arrivals: dict[str, list[float]] = {}

    def plan(body_hash: str, attempt: int) -> str | None:
        arrivals.setdefault(body_hash, []).append(time.monotonic())
        return "429" if attempt == 0 else None

    with FakeOpenAIServer(plan=plan, retry_after="1") as server:
        solve(teacher_config(server.url, samples=1, backoff_base_s=0.01), make_problems(2), tmp_path / "log.jsonl")
    assert len(arrivals) == 4
    for times in arrivals.values():
        assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_retry_after_parsing_and_backoff():
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(httpx.Headers({"Retry-After": date})) <= 31
    assert parse_retry_after(httpx.Headers({"Retry-After": "99999"})) == 600.0
    assert parse_retry_after(httpx.Headers({})) is None
    rng = random.Random(0)
    delays = [backoff_delay(attempt, 1.0, 8.0, None, rng) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert 3.0 <= backoff_delay(0, 0.5, 8.0, 3.0, rng) <= 3.5


def test_exhausted_retries_name_the_server_and_keep_what_arrived(tmp_path):
    problems = make_problems(6)
    doomed = {problems[1].question, problems[4].question}

    def answer_or_fail(body_hash: str, attempt: int) -> str | None:
        return None

    log_path = tmp_path / "log.jsonl"
    with FakeOpenAIServer(plan=answer_or_fail) as server:
        original = server.handle

        def handle(handler, body):  # problems in `doomed` always get HTTP 500
            if last_question(body) in doomed:
                handler._send(500, {"error": {"message": "the GPU is on fire"}})
                return
            original(handler, body)

        server.handle = handle
        config = teacher_config(server.url, samples=2, max_retries=2, concurrency=2)
        with pytest.raises(TeacherError) as failure:
            solve(config, problems, log_path)
        message = str(failure.value)
        assert server.url in message and "HTTP 500" in message and "the GPU is on fire" in message
        assert "gave up after 3 attempt(s)" in message
        with CompletionLog(log_path) as log:
            saved = len(log.entries)
        assert saved > 0  # what arrived before the failure is kept

        server.handle = original  # the server recovers: only the missing samples are requested
        before = len(server.served)
        solutions, ledger, _ = solve(config, problems, log_path)
        assert len(solutions) == 6 * 2 * 2
        assert ledger.total().requests == len(server.served) - before
        assert ledger.total().completions == 6 * 2 * 2 - saved


def test_failures_within_the_allowance_leave_only_those_samples_missing(tmp_path):
    problems = make_problems(4)
    with FakeOpenAIServer() as server:
        original = server.handle

        def handle(handler, body):
            if last_question(body) == problems[2].question:
                handler._send(400, {"error": {"message": "context length exceeded"}})
                return
            original(handler, body)

        server.handle = handle
        config = teacher_config(server.url, samples=1, max_failed_requests=5)
        solutions, ledger, _ = solve(config, problems, tmp_path / "log.jsonl")
    assert {s.problem_id for s in solutions} == {p.id for p in problems} - {problems[2].id}
    assert ledger.total().failed_requests == 2 and ledger.total().retries == 0  # a 400 is not retried


def test_api_key_comes_from_the_environment_and_is_never_written(tmp_path, monkeypatch):
    secret = "sk-test-do-not-store-4242"
    out = tmp_path / "out"
    with FakeOpenAIServer(api_key=secret) as server:
        config = SikedConfig(teacher=teacher_config(server.url, samples=1, api_key_env="SIKED_TEST_KEY"))
        monkeypatch.delenv("SIKED_TEST_KEY", raising=False)
        with pytest.raises(TeacherError) as failure:
            teach(config, make_problems(2), out, progress=False)
        assert "HTTP 401" in str(failure.value) and "SIKED_TEST_KEY, which is NOT set" in str(failure.value)
        monkeypatch.setenv("SIKED_TEST_KEY", secret)
        result = teach(config, make_problems(2), out, progress=False)
    assert result.stats["requests"] == 2 * 3
    for path in out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8"), path


def correct_answers(body: dict, index: int) -> str:
    """Right answers in each strategy's form (found from the question), varied by sample index."""
    question = last_question(body)
    numbers = [int(word) for word in question.replace("?", " ").split() if word.isdigit()]
    a, b = numbers[0], numbers[1]
    system = str(body.get("messages", [{}])[0].get("content", "")) + str(body.get("prompt", ""))
    if "Python program" in system:
        bought = ("bought", "more_apples")[index % 2]
        return f"apples_at_start = {a}\n{bought} = {b}\nanswer = apples_at_start + {bought}"
    if "sub-questions" in system:
        return format_l2m([("How many apples does he have?", f"{a} + {b} = {a + b}")], str(a + b))
    return f"He has {a} + {b} = {a + b} apples.{' Done.' * index}\nThe answer is {a + b}."


def test_teach_grades_keeps_and_writes_the_dataset_and_stats(tmp_path):
    problems = make_problems(5)
    with FakeOpenAIServer(answer=correct_answers, plan=fault_plan(seed=3, share=0.3), retry_after="0.05") as server:
        config = SikedConfig(
            teacher=teacher_config(server.url, samples=3, keep_per_strategy=2, price_prompt_per_mtok=1.0,
                                   price_completion_per_mtok=2.0),
            sandbox={"workers": 1},
        )
        result = teach(config, problems, tmp_path, progress=False)
    stats = json.loads((tmp_path / "teacher_stats.json").read_text())
    assert stats == json.loads(json.dumps(result.stats))
    for name in STRATEGIES:
        row = stats["by_strategy"][name]
        assert row["attempted"] == 5 and row["correct"] == 5 and row["solve_rate"] == 1.0
        assert row["samples"] == 15 and row["correct_samples"] == 15
    # CoT samples are all distinct (kept 2 each); PoT has 2 distinct texts; L2M only one.
    assert [stats["by_strategy"][n]["kept"] for n in STRATEGIES] == [10, 5, 10]
    assert stats["oracle_coverage"] == 1.0 and stats["reference_solutions"] is False
    assert stats["requests"] == len(server.served) and stats["retries"] == server.total_requests - len(server.served)
    expected_cost = (stats["prompt_tokens"] * 1.0 + stats["completion_tokens"] * 2.0) / 1e6
    assert stats["cost"] == pytest.approx(expected_cost)
    assert abs(sum(stats["kept_share"].values()) - 1.0) < 1e-9
    rows = [json.loads(line) for line in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    assert len(rows) == 25 and all({"problem_id", "strategy", "solution"} <= set(row) for row in rows)
    assert all(row["origin"] == "teacher:openai:fake-model" for row in rows)
    samples = (tmp_path / "teacher_samples.jsonl").read_text().splitlines()
    assert len(samples) == 45


def test_completion_log_repairs_a_torn_tail_and_rejects_damage(tmp_path):
    problems = make_problems(2)
    log_path = tmp_path / "log.jsonl"
    with FakeOpenAIServer() as server:
        solve(teacher_config(server.url, samples=1), problems, log_path)
        lines = log_path.read_bytes().splitlines(keepends=True)
        log_path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # crash mid-write
        before = server.total_requests
        solutions, ledger, _ = solve(teacher_config(server.url, samples=1), problems, log_path)
        assert server.total_requests == before + 1 and len(solutions) == 4  # only the torn one again
    assert log_path.read_bytes().count(b"\n") == len(lines)
    damaged = log_path.read_text().splitlines()
    damaged[1] = damaged[1][:20]
    log_path.write_text("\n".join(damaged) + "\n")
    with pytest.raises(TeacherError, match=rf"{log_path}:2: damaged completion log line"):
        CompletionLog(log_path)


def test_one_writer_per_completion_log(tmp_path):
    log_path = tmp_path / "log.jsonl"
    with CompletionLog(log_path):
        with pytest.raises(TeacherError, match="in use by another process"):
            CompletionLog(log_path)
    CompletionLog(log_path).close()  # free again once the first writer is gone


def test_cache_key_covers_what_changes_the_distribution(tmp_path):
    problems = make_problems(1)
    log_path = tmp_path / "log.jsonl"
    with FakeOpenAIServer() as server:
        solve(teacher_config(server.url, samples=2), problems, log_path)
        for change in ({"temperature": 0.2}, {"model": "other"}, {"endpoint": "completions"}, {"max_tokens": 99}):
            before = server.total_requests
            solve(teacher_config(server.url, samples=2, **change), problems, log_path)
            assert server.total_requests > before, change
        before = server.total_requests
        solve(teacher_config(server.url, samples=3), problems, log_path)  # one more sample each
        assert server.total_requests == before + 2
        before = server.total_requests
        solve(teacher_config(server.url, samples=3, concurrency=1, max_retries=0), problems, log_path)
        assert server.total_requests == before  # transport settings are not part of the key


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from siked.config import TeacherConfig
    from siked.records import Problem
    from siked.teachers import SolveContext
    from siked.teachers.openai_client import OpenAITeacher

    url, log_path, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    problems = [
        Problem(id=f"toy/train/{i}", question=f"Tom has {i + 2} apples and buys {3 * i + 1} more. How many?",
                answer=float(4 * i + 3), answer_text=str(4 * i + 3), source="toy", split="train")
        for i in range(count)
    ]
    config = TeacherConfig(backend="openai", samples=2, openai=dict(
        base_url=url, model="fake-model", concurrency=4, multi_sample="separate", backoff_base_s=0.01))
    context = SolveContext(strategies=["cot", "pot"], samples=2, log_path=log_path, say=print)
    solutions = OpenAITeacher(config).solve(problems, context)
    print("solutions", len(solutions), "requests", context.ledger.total().requests)
    """
)


def test_kill_9_mid_run_loses_at_most_the_requests_in_flight(tmp_path):
    script = tmp_path / "run_teacher.py"
    script.write_text(KILL_SCRIPT)
    log_path = tmp_path / "log.jsonl"
    count, total = 15, 15 * 2 * 2
    with FakeOpenAIServer(latency_s=0.05) as server:
        process = subprocess.Popen(
            [sys.executable, str(script), server.url, str(log_path), str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log_path.exists() and log_path.read_bytes().count(b"\n") >= total // 3:
                break
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.2)  # let the server finish answering what was in flight
        served_before = list(server.served)
        with CompletionLog(log_path) as log:
            saved = dict(log.entries)
        assert total // 3 <= len(saved) < total
        lost = len(served_before) - len(saved)
        assert 0 <= lost <= 4  # at most the concurrency: only requests in flight are lost
        logged_hashes = {entry.text.split()[1] for entry in saved.values()}

        before = len(server.served)
        result = subprocess.run(
            [sys.executable, str(script), server.url, str(log_path), str(count)],
            capture_output=True, text=True, timeout=120, check=True,
        )
        resumed = server.served[before:]
        assert f"solutions {total} requests {total - len(saved)}" in result.stdout
        assert len(resumed) == total - len(saved)  # only the missing requests were sent
        assert not logged_hashes & {served.hash for served in resumed}  # nothing saved was asked again
    with CompletionLog(log_path) as log:
        assert len(log.entries) == total


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_completion_cut_by_max_tokens_is_never_kept_even_with_the_right_answer(tmp_path, endpoint):
    problems = make_problems(3)
    cut = lambda body, index: "length" if index == 0 else "stop"  # noqa: E731
    with FakeOpenAIServer(answer=correct_answers, finish=cut) as server:
        config = SikedConfig(teacher=teacher_config(server.url, samples=2, keep_per_strategy=2, endpoint=endpoint),
                             sandbox={"workers": 1})
        result = teach(config, problems, tmp_path, progress=False)
    assert len(result.samples) == 3 * 3 * 2
    for sample, verdict in zip(result.samples, result.verdicts, strict=True):
        assert sample.truncated == (sample.sample_index == 0)
        if sample.truncated:  # the text holds the right answer, but it was cut by the limit
            assert verdict.status == "invalid" and not verdict.correct and verdict.truncated
            assert "finish_reason: length" in verdict.detail
        else:
            assert verdict.correct
    assert result.kept and all(k.sample_index == 1 and not k.truncated for k in result.kept)
    rows = [json.loads(line) for line in (tmp_path / "teacher_samples.jsonl").read_text().splitlines()]
    assert sum(row["truncated"] for row in rows) == 9
    assert result.stats["by_strategy"]["cot"]["statuses"]["invalid"] == 3
