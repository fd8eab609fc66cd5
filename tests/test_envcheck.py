"""A CUDA torchvision/torchaudio/torchcodec beside a CPU torch is named before a run starts."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from siked import envcheck
from siked.envcheck import EnvironmentProblem, check_torch_companions

UNINSTALL = "pip uninstall torchvision torchaudio torchcodec"


class FakeDistribution(metadata.Distribution):
    """Installed-package metadata with a given version and file list, no files on disk."""

    def __init__(self, name: str, version: str, files: tuple[str, ...] = ()):
        self._text = {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                      "RECORD": "".join(f"{f},,\n" for f in files)}

    def read_text(self, filename: str) -> str | None:
        return self._text.get(filename)

    def locate_file(self, path: str | Path) -> Path:
        return Path("/nonexistent") / path


def installed(monkeypatch: pytest.MonkeyPatch, **versions: str | tuple[str, tuple[str, ...]]) -> None:
    def lookup(name: str) -> metadata.Distribution | None:
        found = versions.get(name)
        if found is None:
            return None
        version, files = (found, ()) if isinstance(found, str) else found
        return FakeDistribution(name, version, files)

    monkeypatch.setattr(envcheck, "distribution", lookup)


def test_cuda_companions_beside_a_cpu_torch_are_named_with_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, torch="2.9.0+cpu", torchvision="0.24.0+cu128",
              torchaudio=("2.9.0", ("torchaudio/lib/libtorchaudio.so", "torchaudio.libs/libcudart-1a2b.so.12")))
    with pytest.raises(EnvironmentProblem) as caught:
        check_torch_companions()
    message = str(caught.value)
    assert "\n" not in message and UNINSTALL in message
    assert message.startswith("torch 2.9.0+cpu is a CPU build but torchvision 0.24.0+cu128, torchaudio 2.9.0 "
                              "are CUDA builds")


def test_matching_or_absent_companions_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, torch="2.9.0+cpu", torchvision="0.24.0+cpu")
    check_torch_companions()
    installed(monkeypatch, torch="2.9.0+cu128", torchvision="0.24.0+cu128")  # CUDA with CUDA: fine
    check_torch_companions()
    installed(monkeypatch)  # no torch at all
    check_torch_companions()


def test_the_real_environment_passes_and_siked_run_refuses_a_broken_one(tmp_path: Path) -> None:
    check_torch_companions()  # this venv: no CUDA companion beside its torch
    # a real `siked run` in a child whose metadata shows a CUDA torchvision beside a CPU torch
    site = tmp_path / "site"
    for name, version in (("torch", "2.9.0+cpu"), ("torchvision", "0.24.0+cu128")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from siked.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "run", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and UNINSTALL in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [done.stderr.strip()]
    assert not (tmp_path / "run").exists()
