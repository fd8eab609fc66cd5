"""The student writes solutions: prompts in, tagged completions out, behind one backend interface.

A `Student` is a loaded model behind its backend (`HFBackend` here, or `VLLMBackend`), with one
`generate` method. Modes: `free` (the student writes its own strategy tag), or a strategy name (the
response is prefilled with that strategy's tag). `greedy` decodes one deterministic answer per question.

A completion without a known tag becomes a `Solution` with strategy `NO_STRATEGY` ("none") and the
raw text as its solution: it is kept (nothing computed is lost) and counted as invalid by
`siked.student.decode.grade_student_outputs`, which never hands it to the grader.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siked.config import GenerationConfig, SikedConfig
from siked.metrics import NO_STRATEGY
from siked.progress import make_progress
from siked.records import Problem, Solution
from siked.strategies import FREE, forced_prefix, get_strategy, parse_tagged, student_prompt
from siked.student.backend import (
    ALPACA_STOPS,
    Completion,
    GenerationBackend,
    ProgressFn,
    cut_at_stop,
    stop_strings,
)
from siked.student.models import (
    StudentSource,
    load_model,
    load_tokenizer,
    locate_model,
    merged_student,
)
from siked.student.vllm_backend import VLLMBackend

__all__ = ["ALPACA_STOPS", "Completion", "GenerationBackend", "ProgressFn", "cut_at_stop", "stop_strings"]

def batch_seed(seed: int, first_prompt: str) -> int:
    """A batch's seed depends on the run seed and its content, not on what ran before it."""
    digest = hashlib.sha256(f"{seed}\0{first_prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def cache_keyword(model: Any) -> str:
    """The name under which this transformers takes a KV cache: `cache` since 5.25 (where the old
    `past_key_values` warns that it will go), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class HFBackend:
    """transformers `generate`: batched, left padded, KV cache, length-sorted batches, seeded.

    `cfg.batch_size` counts sequences per `generate` call (prompts x samples); samples of one
    prompt share a batch and one encoding of the prompt (its KV cache is copied to each).
    Sampling (temperature, top-p) is drawn by `NucleusSampler`, the same distribution as
    transformers' own sampling at a fraction of its CPU cost. The same seed, prompts and batch
    size give the same text.
    """

    name = "hf"
    choice = ""
    share_prefill = True
    """Encode a prompt once for all its samples (off: once per sample, as `num_return_sequences` does)."""

    def __init__(self, model: Any, tokenizer: Any, cfg: GenerationConfig, stops: Sequence[str]):
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.stops = list(stops) + list(cfg.stop)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(cls, source: StudentSource, cfg: GenerationConfig, stops: Sequence[str]) -> HFBackend:
        model, tokenizer = load_model(source, dtype=cfg.dtype, device=cfg.device, merge=True)
        return cls(model, tokenizer, cfg, stops)

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
        """`max_new_tokens` and `seed` override `cfg.max_new_tokens` and `cfg.seed` for this call."""
        limit = max_new_tokens or self.cfg.max_new_tokens
        seed = self.cfg.seed if seed is None else seed
        encoded = [self.tokenizer(p).input_ids for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
        per_batch = max(1, self.cfg.batch_size // samples)
        results: list[list[Completion]] = [[] for _ in prompts]
        for start in range(0, len(order), per_batch):
            batch = order[start : start + per_batch]
            first = batch_seed(seed, prompts[batch[0]])
            completions = self._generate([encoded[i] for i in batch], samples, greedy, first, limit)
            for k, index in enumerate(batch):
                results[index] = completions[k * samples : (k + 1) * samples]
            if progress is not None:
                progress(len(batch))
        return results

    def _generate(
        self, batch: list[list[int]], samples: int, greedy: bool, seed: int, limit: int
    ) -> list[Completion]:
        import torch

        inputs = self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt")
        ids = inputs["input_ids"].to(self.model.device)
        mask = inputs["attention_mask"].to(self.model.device)
        sample = not greedy and self.cfg.temperature > 0
        config, processors = self._decoding(sample, limit)
        torch.manual_seed(seed)
        with torch.inference_mode():
            cache = self._shared_prefill(ids, mask, samples) if self.share_prefill and ids.shape[1] > 1 else None
            ids, mask = ids.repeat_interleave(samples, 0), mask.repeat_interleave(samples, 0)
            output = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=config, logits_processor=processors,
                tokenizer=self.tokenizer, **{cache_keyword(self.model): cache},
            )
        new_tokens = output[:, ids.shape[1] :].tolist()
        return [self._completion(tokens, limit) for tokens in new_tokens]

    def _shared_prefill(self, ids: Any, mask: Any, samples: int) -> Any:
        """Encode each prompt once and copy its KV cache to its samples (not `samples` times over).

        All but the last prompt token are cached; `generate` feeds the last one and goes on.
        Positions follow the attention mask, as `generate` computes them for left padding.
        """
        from transformers import DynamicCache

        positions = (mask[:, :-1].cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions,
                   use_cache=True, **{cache_keyword(self.model): cache})
        cache.batch_repeat_interleave(samples)
        return cache

    def _decoding(self, sample: bool, limit: int) -> tuple[Any, Any]:
        """Generation config and logits processors; sampling is drawn by `NucleusSampler`."""
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import LogitsProcessorList

        from siked.student.sampling import NucleusSampler  # imports torch

        eos = self.model.generation_config.eos_token_id
        eos_ids = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        config = HFGenerationConfig(
            max_new_tokens=limit,
            do_sample=False,  # the sampler leaves one finite score per row: greedy picks the draw
            stop_strings=self.stops or None,
            eos_token_id=sorted(eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        processors = [NucleusSampler(self.cfg.temperature, self.cfg.top_p)] if sample else []
        return config, LogitsProcessorList(processors)

    def _completion(self, ids: list[int], limit: int) -> Completion:
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        ended = next((i + 1 for i, t in enumerate(ids) if t in ends), None)
        length = ended or len(ids)
        text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
        cut = cut_at_stop(text, self.stops)
        truncated = ended is None and length >= limit and cut == text
        return Completion(text=cut, num_tokens=length, truncated=truncated)

    def close(self) -> None:
        self.model = None


def choose_backend(source: StudentSource, cfg: GenerationConfig) -> tuple[str, str]:
    """(backend name, why) for `generation.backend`; `auto` takes vLLM where it imports, else hf.

    vLLM serving a LoRA adapter is no faster than hf, so `auto` serves a student that is an
    adapter from a merged copy of it (`merged_student`); an explicit `vllm` serves the adapter
    through a `LoRARequest`.
    """
    if cfg.backend != "auto":
        return cfg.backend, f"generation.backend is {cfg.backend}"
    from siked.student.vllm_backend import vllm_unavailable

    missing = vllm_unavailable()
    if missing is not None:
        return "hf", f"auto: {missing}"
    if source.adapter is not None:
        return "vllm", "auto: vLLM is installed; the LoRA adapter is merged into a copy of its base"
    return "vllm", "auto: vLLM is installed and the student is full weights"


def open_backend(
    model: str | Path | StudentSource, cfg: GenerationConfig, prompt_style: str
) -> GenerationBackend:
    """The generation backend `cfg` asks for, loaded; its `name` and `choice` say which and why."""
    source = model if isinstance(model, StudentSource) else locate_model(model)
    stops = stop_strings(prompt_style)
    name, why = choose_backend(source, cfg)
    backend: Any
    if name == "vllm":
        if cfg.backend == "auto" and source.adapter is not None:
            source = merged_student(source)
        backend = VLLMBackend(source, cfg, stops)
    else:
        backend = HFBackend.load(source, cfg, stops)
    backend.choice = why
    return backend


def build_prompt(question: str, mode: str, prompt_style: str, tokenizer: Any = None, *,
                 strategies: Sequence[str]) -> str:
    """The student prompt listing `strategies` (those it was taught), followed by the forced
    strategy's tag unless `mode` is free.

    The tag's trailing space is left to the model: in training, the space belongs to the
    first word's token, so a prefilled lone space would be a token it never saw there.
    """
    prompt = student_prompt(question, style=prompt_style, tokenizer=tokenizer, strategies=strategies)
    return prompt if mode == FREE else prompt + forced_prefix(mode).rstrip()


def to_solution(problem_id: str, text: str, mode: str, origin: str, index: int) -> Solution:
    if mode != FREE:
        text = forced_prefix(mode).rstrip() + text
    strategy, body = parse_tagged(text)
    if strategy is None:
        return Solution(problem_id=problem_id, strategy=NO_STRATEGY, solution=text.strip(),
                        origin=origin, sample_index=index)
    body = get_strategy(strategy).clean(body)
    return Solution(problem_id=problem_id, strategy=strategy, solution=body, origin=origin,
                    sample_index=index)


@dataclass
class Generation:
    """What one `Student.generate` call wrote, and what it cost."""

    solutions: list[Solution]
    generated_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


class Student:
    """A loaded student: its weights (`source`), the backend serving them (hf or vllm: its `name`
    and `choice` say which and why) and its prompt style. `generate` writes its solutions; `close`
    (or the end of a `with` block) hands the backend's memory back. Its prompt lists `strategies`,
    those it was taught.
    """

    def __init__(self, source: StudentSource, backend: GenerationBackend, generation: GenerationConfig,
                 prompt_style: str = "alpaca", *, strategies: Sequence[str], console: Any = None,
                 progress: bool = True):
        self.source = source
        self.backend = backend
        self.generation = generation
        self.prompt_style = prompt_style
        self.strategies = list(strategies)
        self.console = console
        self.progress = progress
        """Show a progress bar per `generate` call."""

    @classmethod
    def load(cls, model: str | Path | StudentSource, config: SikedConfig, *, console: Any = None,
             progress: bool = True) -> Student:
        """`model`: anything `locate_model` accepts, a `train_student` output directory included; it is
        prompted in the style it was trained with, else `student.prompt_style`, listing the strategies
        it was trained on, else `teacher.strategies`."""
        source = model if isinstance(model, StudentSource) else locate_model(model)
        style = source.prompt_style or config.student.prompt_style
        backend = open_backend(source, config.generation, style)
        return cls(source, backend, config.generation, style, strategies=source.strategies or config.teacher.strategies,
                   console=console, progress=progress)

    def __enter__(self) -> Student:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    @functools.cached_property
    def tokenizer(self) -> Any:
        """The backend's tokenizer; loaded on its own where a chat prompt needs one the backend lacks."""
        tokenizer = getattr(self.backend, "tokenizer", None)
        if tokenizer is None and self.prompt_style == "chat":
            tokenizer = load_tokenizer(self.source)
        return tokenizer

    def generate(self, problems: Sequence[Problem], *, mode: str = FREE, n: int | None = None, greedy: bool = False,
                 max_new_tokens: int | None = None, seed: int | None = None) -> Generation:
        """The student's solutions of `problems`, `n` per problem (default `generation.samples`; greedy: 1).

        `mode`: free (the student writes its own strategy tag) or a strategy to force (its tag is
        prefilled). Greedy decoding is evaluation: it stops at `generation.eval_max_new_tokens`,
        sampling at `generation.max_new_tokens`; `max_new_tokens` overrides either. `seed` (default
        `generation.seed`) seeds the sampling. A completion without a known tag gets `NO_STRATEGY`.
        """
        n = self._count(problems, mode, n, greedy)
        limit = max_new_tokens or (self.generation.eval_max_new_tokens if greedy else self.generation.max_new_tokens)
        prompts = [build_prompt(p.question, mode, self.prompt_style, self.tokenizer, strategies=self.strategies)
                   for p in problems]
        label = f"sampling {mode}" + (" (greedy)" if greedy else f" x{n}")
        start = time.perf_counter()
        with progress_bar(len(prompts), label, self.console, enabled=self.progress) as advance:
            completions = self.backend.complete(prompts, samples=n, greedy=greedy, progress=advance,
                                                max_new_tokens=limit, seed=seed)
        seconds = time.perf_counter() - start
        origin = f"student:{self.source.spec}"
        solutions = [to_solution(problem.id, c.text, mode, origin, index).model_copy(update={"truncated": c.truncated})
                     for problem, outs in zip(problems, completions, strict=True) for index, c in enumerate(outs)]
        tokens = sum(c.num_tokens for outs in completions for c in outs)
        return Generation(solutions=solutions, generated_tokens=tokens, seconds=seconds)

    def _count(self, problems: Sequence[Problem], mode: str, n: int | None, greedy: bool) -> int:
        """Solutions per problem; a request that cannot be met fails before anything is generated."""
        if mode != FREE:
            get_strategy(mode)  # an unknown strategy is a KeyError naming the known ones
        if not problems:
            raise ValueError("no problems to solve: the question set is empty")
        if greedy and n not in (None, 1):
            raise ValueError(f"greedy decoding writes one solution per problem (asked for n={n})")
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1 (got {n})")
        return 1 if greedy else (n or self.generation.samples)


@contextmanager
def progress_bar(total: int, label: str, console: Any, enabled: bool) -> Iterator[ProgressFn | None]:
    """A rich progress bar over prompts; yields the callback that advances it."""
    if not enabled:
        yield None
        return
    with make_progress(console) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)
