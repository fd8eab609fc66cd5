"""Environment problems named before a run starts, instead of a traceback from a child minutes later.

Read from the installed packages' metadata only: the loop never imports torch.
"""

from __future__ import annotations

import re
from importlib import metadata

from siked.errors import SikedError

TORCH_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
"""Packages built against one torch; siked uses none of them, but trl imports them when present."""
CUDA_FILE = re.compile(r"cudart|nvjpeg|libnvrtc|libcuda", re.IGNORECASE)


class EnvironmentProblem(SikedError):
    """An installed package combination that cannot work; the message says what to run."""


def distribution(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def local_label(dist: metadata.Distribution) -> str:
    """The build label of a version (`cpu` in 2.5.1+cpu, `cu124` in 0.20.1+cu124), or ''."""
    return dist.version.partition("+")[2].lower()


def is_cpu_torch(dist: metadata.Distribution) -> bool:
    if local_label(dist) == "cpu":
        return True
    version_file = next((f for f in dist.files or () if str(f).replace("\\", "/") == "torch/version.py"), None)
    if version_file is None:
        return False
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^cuda\s*(:[^=]*)?=\s*None\s*$", text, re.MULTILINE) is not None


def is_cuda_build(dist: metadata.Distribution) -> bool:
    label = local_label(dist)
    if label.startswith(("cu", "rocm")):
        return True
    return any(CUDA_FILE.search(str(f)) for f in dist.files or ())


def cuda_companions_of_cpu_torch() -> list[str]:
    """`name version` of each CUDA-built torch companion installed beside a CPU-only torch."""
    torch = distribution("torch")
    if torch is None or not is_cpu_torch(torch):
        return []
    found = [(name, distribution(name)) for name in TORCH_COMPANIONS]
    return [f"{name} {dist.version}" for name, dist in found if dist is not None and is_cuda_build(dist)]


def check_torch_companions() -> None:
    """Refuse to start with CUDA builds of torchvision/torchaudio/torchcodec beside a CPU torch."""
    mismatched = cuda_companions_of_cpu_torch()
    if mismatched:
        torch = distribution("torch")
        assert torch is not None
        raise EnvironmentProblem(
            f"torch {torch.version} is a CPU build but {', '.join(mismatched)} "
            f"{'is a CUDA build' if len(mismatched) == 1 else 'are CUDA builds'}, which breaks importing trl; "
            f"siked uses none of them: run `pip uninstall {' '.join(TORCH_COMPANIONS)}`"
        )
