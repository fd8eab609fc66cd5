"""The vLLM generation backend (GPU; `pip install siked[vllm]`), imported only when chosen.

The LoRA adapter is served with a `LoRARequest` on top of the base weights, never merged.
`tensor_parallel_size` shards one engine over GPUs; `data_parallel_size` > 1 starts that many
engines in spawned processes, each on its own GPUs, each sampling a contiguous share of the
prompts (vLLM's offline data-parallel recipe for dense models).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

from siked.config import GenerationConfig
from siked.errors import one_line
from siked.student.backend import Completion, ProgressFn, cut_at_stop
from siked.student.models import ModelError, StudentSource

ADAPTER_NAME = "siked-student"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ModelError(
            "generation.backend 'vllm' needs vLLM and a GPU: pip install 'siked[vllm]' "
            f"(import failed: {one_line(exc)})"
        ) from exc
    return vllm


def adapter_rank(source: StudentSource) -> int:
    config = json.loads((source.adapter / "adapter_config.json").read_text(encoding="utf-8"))
    return int(config.get("r", 16))


def engine_kwargs(source: StudentSource, cfg: GenerationConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": source.base,
        "tokenizer": source.tokenizer_path,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "seed": cfg.seed,
        "dtype": "auto" if cfg.dtype == "auto" else cfg.dtype,
    }
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


class VLLMBackend:
    def __init__(self, source: StudentSource, cfg: GenerationConfig, stops: Sequence[str]):
        _import_vllm()
        self.source = source
        self.cfg = cfg
        self.stops = list(stops) + list(cfg.stop)
        self.llm: Any = None
        if cfg.data_parallel_size == 1:
            from vllm import LLM

            self.llm = LLM(**engine_kwargs(source, cfg))

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
    ) -> list[list[Completion]]:
        cfg = self.cfg.model_copy(update={"max_new_tokens": max_new_tokens or self.cfg.max_new_tokens})
        if self.llm is None:
            results = _data_parallel(self.source, cfg, list(prompts), samples, greedy, self.stops)
        else:
            params = sampling_params(cfg, samples, greedy, self.stops)
            outputs = self.llm.generate(
                list(prompts), params, lora_request=lora_request(self.source), use_tqdm=False
            )
            results = _completions(outputs, self.stops)
        if progress is not None:
            progress(len(prompts))
        return results

    def close(self) -> None:
        self.llm = None


def _shards(items: list[str], parts: int) -> list[tuple[int, int]]:
    size, extra = divmod(len(items), parts)
    bounds, start = [], 0
    for rank in range(parts):
        end = start + size + (1 if rank < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _data_parallel(
    source: StudentSource,
    cfg: GenerationConfig,
    prompts: list[str],
    samples: int,
    greedy: bool,
    stops: list[str],
) -> list[list[Completion]]:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(_gpu_count())]
    need = cfg.data_parallel_size * cfg.tensor_parallel_size
    if len(gpus) < need:
        raise ModelError(
            f"data_parallel_size {cfg.data_parallel_size} x tensor_parallel_size "
            f"{cfg.tensor_parallel_size} needs {need} GPUs, {len(gpus)} visible"
        )
    bounds = _shards(prompts, cfg.data_parallel_size)
    with context.Pool(processes=cfg.data_parallel_size) as pool:
        jobs = []
        for rank, (start, end) in enumerate(bounds):
            devices = ",".join(gpus[rank * cfg.tensor_parallel_size : (rank + 1) * cfg.tensor_parallel_size])
            args = (source, cfg, prompts[start:end], samples, greedy, stops, devices)
            jobs.append(pool.apply_async(_engine_worker, args))
        shards = [job.get() for job in jobs]
    return [item for shard in shards for item in shard]


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _engine_worker(
    source: StudentSource,
    cfg: GenerationConfig,
    prompts: list[str],
    samples: int,
    greedy: bool,
    stops: list[str],
    devices: str,
) -> list[list[Completion]]:
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    if not prompts:
        return []
    from vllm import LLM

    llm = LLM(**engine_kwargs(source, cfg))
    params = sampling_params(cfg, samples, greedy, stops)
    outputs = llm.generate(prompts, params, lora_request=lora_request(source), use_tqdm=False)
    return _completions(outputs, stops)
