"""Sampling the student with the hf backend: forced strategies, seeds, batching, stop strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siked.config import GenerationConfig, SikedConfig
from siked.metrics import NO_STRATEGY
from siked.records import Problem
from siked.strategies import FREE, strategy_names
from siked.student import Student
from siked.student.generate import build_prompt, cut_at_stop, stop_strings, to_solution

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TAUGHT = SikedConfig().teacher.strategies


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    path = DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"GSM8K test data not found at {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:3]]
    return [
        Problem(id=f"gsm8k/test/{i}", question=r["question"], answer=float(r["answer"].split("####")[1]),
                answer_text=r["answer"].split("####")[1].strip(), source="gsm8k", split="test")
        for i, r in enumerate(rows)
    ]


GENERATION = GenerationConfig(backend="hf", max_new_tokens=6, eval_max_new_tokens=6, dtype="float32", device="cpu",
                              batch_size=8, seed=3, samples=2)


@pytest.fixture(scope="module")
def student(model_cache: Path):
    """The embedded student (untrained), float32 on CPU, loaded once for the module."""
    with Student.load("embedded:smollm2", SikedConfig(generation=GENERATION), progress=False) as loaded:
        yield loaded


def same_model(student: Student, *, prompt_style: str = "alpaca", **generation: object) -> Student:
    """The loaded model, prompted or limited otherwise (the backend is shared, not reloaded)."""
    return Student(student.source, student.backend, student.generation.model_copy(update=generation),
                   prompt_style, strategies=student.strategies, progress=False)


@pytest.mark.slow
def test_forced_strategy_prefill_yields_that_strategy(student: Student, problems: list[Problem]) -> None:
    for strategy in ("pot", "l2m"):
        solutions = student.generate(problems[:2], mode=strategy, greedy=True).solutions
        assert [s.strategy for s in solutions] == [strategy, strategy]
        assert [s.problem_id for s in solutions] == [p.id for p in problems[:2]]
        assert all(s.origin == "student:embedded:smollm2" for s in solutions)


@pytest.mark.slow
def test_free_choice_writes_n_solutions_each_and_greedy_one(student: Student, problems: list[Problem]) -> None:
    assert student.backend.name == "hf" and student.backend.choice == "generation.backend is hf"
    greedy = student.generate(problems[:2], greedy=True)
    assert [(s.problem_id, s.sample_index) for s in greedy.solutions] == [(p.id, 0) for p in problems[:2]]
    sampled = student.generate(problems[:2]).solutions  # n: generation.samples
    assert [(s.problem_id, s.sample_index) for s in sampled] == [(p.id, i) for p in problems[:2] for i in (0, 1)]
    three = student.generate(problems[:1], n=3).solutions
    assert [s.sample_index for s in three] == [0, 1, 2]
    for solution in greedy.solutions + sampled + three:  # the untrained student picks a tag, or writes none
        assert solution.strategy in {*strategy_names(), NO_STRATEGY}
        assert solution.origin == "student:embedded:smollm2"
    assert greedy.generated_tokens <= 2 * GENERATION.eval_max_new_tokens
    assert greedy.solutions == student.generate(problems[:2], greedy=True).solutions  # greedy is deterministic


@pytest.mark.slow
def test_chat_prompt_style_uses_the_chat_template(student: Student, problems: list[Problem]) -> None:
    chat = same_model(student, prompt_style="chat")
    prompt = build_prompt(problems[0].question, "cot", "chat", chat.tokenizer, strategies=TAUGHT)
    assert prompt.endswith("<|im_start|>assistant\n[cot]:")
    solutions = chat.generate(problems[:1], mode="cot", greedy=True).solutions
    assert [s.strategy for s in solutions] == ["cot"]


@pytest.mark.slow
def test_sampling_is_reproducible_with_a_seed(student: Student, problems: list[Problem]) -> None:
    def sample(seed: int | None) -> list[str]:
        run = student.generate(problems[:2], n=3, seed=seed)
        assert len(run.solutions) == 6
        assert [s.sample_index for s in run.solutions] == [0, 1, 2, 0, 1, 2]
        assert run.generated_tokens > 0 and run.tokens_per_s > 0
        return [c for s in run.solutions for c in (s.strategy, s.solution)]

    first, again, other = sample(11), sample(11), sample(12)
    assert first == again
    assert first != other
    assert sample(None) == sample(GENERATION.seed)  # generation.seed unless given


@pytest.mark.slow
def test_batched_left_padded_greedy_matches_one_at_a_time(student: Student, problems: list[Problem]) -> None:
    backend = student.backend
    prompts = [build_prompt(p.question, FREE, "alpaca", strategies=TAUGHT) for p in problems]
    batched = backend.complete(prompts, samples=1, greedy=True)
    single = [backend.complete([p], samples=1, greedy=True)[0] for p in prompts]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    assert all(0 < b[0].num_tokens <= GENERATION.max_new_tokens for b in batched)


def test_stop_strings_cut_the_completion() -> None:
    stops = stop_strings("alpaca")
    text = "[cot]: 2 + 3 = 5\nThe answer is 5.\n### Instruction:\nSolve"
    assert cut_at_stop(text, stops) == "[cot]: 2 + 3 = 5\nThe answer is 5."
    assert cut_at_stop("no stop here", stops) == "no stop here"
    assert stop_strings("chat") == []  # the chat template ends turns with EOS


def test_untagged_and_tagged_completions() -> None:
    free = to_solution("q1", "[pot]: answer = 2 + 3", FREE, "student:x", 0)
    assert (free.strategy, free.solution) == ("pot", "answer = 2 + 3")
    untagged = to_solution("q1", "The answer is 5.", FREE, "student:x", 1)
    assert (untagged.strategy, untagged.solution) == (NO_STRATEGY, "The answer is 5.")
    assert NO_STRATEGY == "none"
    forced = to_solution("q1", " x = 1\nanswer = x", "pot", "student:x", 2)
    assert (forced.strategy, forced.solution) == ("pot", "x = 1\nanswer = x")


def test_forced_prompt_ends_with_the_tag_but_not_its_space() -> None:
    prompt = build_prompt("What is 2 + 3?", "l2m", "alpaca", strategies=TAUGHT)
    assert prompt.endswith("### Response:\n[l2m]:")


@pytest.mark.slow
def test_bad_requests_fail_before_generating(student: Student, problems: list[Problem]) -> None:
    with pytest.raises(KeyError, match="unknown strategy"):
        student.generate(problems, mode="magic")
    with pytest.raises(ValueError, match="empty"):
        student.generate([])
    with pytest.raises(ValueError, match=r"greedy decoding writes one solution per problem \(asked for n=2\)"):
        student.generate(problems, greedy=True, n=2)
    with pytest.raises(ValueError, match="n must be at least 1"):
        student.generate(problems, n=0)


@pytest.mark.slow
def test_cli_sample_writes_graded_solutions(model_cache: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siked.cli import app

    out = tmp_path / "samples.jsonl"
    args = ["sample", "--model", "embedded:smollm2", "--data", "gsm_symbolic:test", "--limit", "2", "--samples", "2",
            "--strategy", "pot", "--out", str(out), "--json",
            "--set", "generation.max_new_tokens=8", "--set", "generation.dtype=float32",
            "--set", "sandbox.workers=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["total"] == 4 and summary["questions"] == 2
    assert summary["strategy_distribution"] == {"pot": 1.0}
    assert summary["generated_tokens"] > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["problem_id"], r["sample_index"]) for r in rows} == {
        ("gsm_symbolic/test/1", 0), ("gsm_symbolic/test/1", 1), ("gsm_symbolic/test/2", 0), ("gsm_symbolic/test/2", 1)}
    assert all(r["strategy"] == "pot" and r["question"] for r in rows)
    verdicts = [json.loads(line) for line in out.with_suffix(".verdicts.jsonl").read_text().splitlines()]
    assert len(verdicts) == 4 and all(v["strategy"] == "pot" for v in verdicts)
    assert sum(v["correct"] for v in verdicts) == summary["correct"]


def test_cli_sample_rejects_an_unknown_strategy(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siked.cli import app

    result = CliRunner().invoke(app, ["sample", "--data", "gsm8k:test", "--strategy", "magic",
                                      "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "--strategy 'magic'" in result.output


def test_vllm_backend_settings_without_a_gpu(tmp_path: Path) -> None:
    """What the vLLM backend would ask of vLLM (its engine and sampling settings), checked without it."""
    import importlib.util

    from siked.student import ModelError, StudentSource
    from siked.student.models import resolve_dtype
    from siked.student.vllm_backend import VLLMBackend, _shards, engine_kwargs

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12, "base_model_name_or_path": "b"}))
    cfg = GenerationConfig(tensor_parallel_size=2, seed=5, dtype="bfloat16")
    with_adapter = engine_kwargs(StudentSource(spec="x", base="/models/base", adapter=adapter), cfg)
    assert with_adapter["enable_lora"] is True and with_adapter["max_lora_rank"] == 16  # 12 rounded up
    assert with_adapter["model"] == "/models/base" and with_adapter["tensor_parallel_size"] == 2
    assert with_adapter["seed"] == 5 and with_adapter["dtype"] == "bfloat16"
    assert with_adapter["gpu_memory_utilization"] == 0.9
    assert "enable_lora" not in engine_kwargs(StudentSource(spec="x", base="/models/base"), cfg)
    on_cpu = engine_kwargs(StudentSource(spec="x", base="/models/base"), cfg.model_copy(update={"dtype": "auto"}), gpu=False)
    assert "gpu_memory_utilization" not in on_cpu and on_cpu["enforce_eager"] is True
    assert on_cpu["enable_chunked_prefill"] is False and "enable_chunked_prefill" not in with_adapter
    assert on_cpu["dtype"] == str(resolve_dtype("auto", "cpu")).removeprefix("torch.")  # as hf decides
    assert _shards(list("abcdefg"), 3) == [(0, 3), (3, 5), (5, 7)]
    assert _shards(list("a"), 2) == [(0, 1), (1, 1)]
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ModelError, match=r"pip install 'siked\[vllm\]'"):
            VLLMBackend(StudentSource(spec="x", base="/models/base"), cfg, [])


@pytest.mark.slow
def test_greedy_evaluation_has_its_own_limit_and_verdicts_record_truncation(student: Student) -> None:
    from siked.config import DatasetSpec
    from siked.data import load_spec
    from siked.evaluation import summarize
    from siked.grading import Grader
    from siked.student.decode import grade_student_outputs

    offline = load_spec(DatasetSpec(name="gsm_symbolic", split="test", limit=2))
    limited = same_model(student, max_new_tokens=3, eval_max_new_tokens=9)
    sampled = limited.generate(offline, mode="cot", n=1)
    greedy = limited.generate(offline, mode="cot", greedy=True)
    assert sampled.generated_tokens == 2 * 3 and greedy.generated_tokens == 2 * 9  # a CoT runs past both limits
    assert all(s.truncated for s in sampled.solutions + greedy.solutions)
    assert limited.generate(offline, mode="cot", greedy=True, max_new_tokens=4).generated_tokens == 2 * 4
    ended = student.backend.complete([build_prompt("What is 2 + 3?", FREE, "alpaca", strategies=TAUGHT)], samples=1, greedy=True,
                                     max_new_tokens=64)[0][0]
    assert ended.truncated == (ended.num_tokens == 64)
    verdicts = grade_student_outputs(Grader(), {p.id: p for p in offline}, greedy.solutions)
    assert all(v.truncated for v in verdicts) and summarize(verdicts)["truncated"] == 2


def test_data_parallel_engines_get_their_own_cores_or_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from siked.student import ModelError
    from siked.student import vllm_backend as vb

    assert vb.core_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    monkeypatch.setattr(vb, "cpu_cores", lambda: [0, 1, 2, 3, 4])
    placements = vb.engine_placements(GenerationConfig(data_parallel_size=2), gpu=False)
    assert placements == [{"VLLM_CPU_OMP_THREADS_BIND": "0-1"}, {"VLLM_CPU_OMP_THREADS_BIND": "2-3"}]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    gpus = vb.engine_placements(GenerationConfig(data_parallel_size=2, tensor_parallel_size=2), gpu=True)
    assert gpus == [{"CUDA_VISIBLE_DEVICES": "4,5"}, {"CUDA_VISIBLE_DEVICES": "6,7"}]
    with pytest.raises(ModelError, match=r"data_parallel_size 3 x tensor_parallel_size 2 needs 6 GPUs, 4 available"):
        vb.engine_placements(GenerationConfig(data_parallel_size=3, tensor_parallel_size=2), gpu=True)
    monkeypatch.setattr(vb, "cpu_cores", lambda: [0])
    with pytest.raises(ModelError, match=r"needs 2 CPU cores, 1 available"):
        vb.engine_placements(GenerationConfig(data_parallel_size=2), gpu=False)


def test_backend_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """auto takes vLLM only where it imports; hf and vllm are taken as asked."""
    from siked.student import StudentSource
    from siked.student import vllm_backend as vb
    from siked.student.generate import choose_backend

    full = StudentSource(spec="m", base="/models/m")
    lora = StudentSource(spec="m", base="/models/m", adapter=tmp_path)
    assert choose_backend(full, GenerationConfig(backend="hf")) == ("hf", "generation.backend is hf")
    assert choose_backend(lora, GenerationConfig(backend="vllm")) == ("vllm", "generation.backend is vllm")
    assert GenerationConfig().backend == "auto"
    monkeypatch.setattr(vb, "vllm_unavailable", lambda: "vLLM is not installed")
    assert choose_backend(full, GenerationConfig()) == ("hf", "auto: vLLM is not installed")
    monkeypatch.setattr(vb, "vllm_unavailable", lambda: None)
    assert choose_backend(full, GenerationConfig())[0] == "vllm"
    name, why = choose_backend(lora, GenerationConfig())
    assert name == "vllm" and "merged" in why
