"""Teachers that run a model in this process: `hf` (transformers, CPU or GPU) and `vllm` (GPU).

Both are set up by `teacher.local`: they generate in chunks of its `batch_size` prompts and save each
chunk's completions in the completion log before starting the next, so an interrupted run keeps
every finished chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

from siked.config import GenerationConfig
from siked.errors import one_line
from siked.student.generate import HFBackend
from siked.student.models import ModelError, load_model
from siked.teachers.base import Reply, Request, TeacherError
from siked.teachers.cache import CompletionLog
from siked.teachers.llm import LLMTeacher


class LocalTeacher(LLMTeacher):
    """A model run in this process, set up by `teacher.local`."""

    model_kinds = "a hub id or a local model directory"
    """What `teacher.local.model` may name, for the error when it is missing."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.local = config.local
        if not self.local.model:
            raise TeacherError(f"teacher.backend={self.backend} needs teacher.local.model: {self.model_kinds}")

    @property
    def endpoint(self) -> str:
        return self.local.endpoint


def chunks(requests: Sequence[Request], size: int) -> Iterator[list[Request]]:
    for start in range(0, len(requests), size):
        yield list(requests[start: start + size])


class HFTeacher(LocalTeacher):
    """A local transformers model, generating through the student's `HFBackend` (batched, left
    padded, one prefill shared by a prompt's samples, seeded by content)."""

    backend = "hf"
    model_kinds = "a hub id, a local model directory, a .gguf file or embedded:smollm2"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            try:
                self._model, self._tokenizer = load_model(self.local.model, dtype="auto")
            except ModelError as exc:
                raise TeacherError(f"hf teacher: {one_line(exc)}") from None
        return self._model, self._tokenizer

    def close(self) -> None:
        self._model = self._tokenizer = None

    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        model, tokenizer = self._load()
        config, batch_size = self.config, self.local.batch_size
        # A batch shares `n` and stop strings; group them without reordering more than needed.
        ordered = sorted(requests, key=lambda r: (r.n, tuple(r.stop)))
        for (n, stop), same in groupby(ordered, key=lambda r: (r.n, tuple(r.stop))):
            sampling = config.temperature > 0
            samples = n if sampling else 1  # greedy: one decode, copied to every sample
            generation = GenerationConfig(
                temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_tokens,
                batch_size=batch_size * samples, seed=config.seed,
            )
            backend = HFBackend(model, tokenizer, generation, list(stop))
            for chunk in chunks(list(same), batch_size):
                prompts = [self._prompt(tokenizer, r) for r in chunk]
                completions = backend.complete(prompts, samples=samples, greedy=not sampling)
                log.record([
                    self._reply(request, len(tokenizer(prompt).input_ids), found, copies=n // samples)
                    for request, prompt, found in zip(chunk, prompts, completions, strict=True)
                ])

    def _prompt(self, tokenizer: Any, request: Request) -> str:
        if request.messages is None:
            return request.prompt or ""
        if not getattr(tokenizer, "chat_template", None):
            raise TeacherError(
                f"hf teacher: {self.local.model!r} has no chat template; use teacher.local.endpoint=completions"
            )
        return tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)

    def _reply(self, request: Request, prompt_tokens: int, completions: list[Any], copies: int) -> Reply:
        finishes = ["length" if c.truncated else "stop" for c in completions]
        return Reply(
            request=request,
            sample_indices=list(request.sample_indices),
            texts=[c.text for c in completions] * copies,
            finish_reasons=finishes * copies,
            prompt_tokens=prompt_tokens,
            completion_tokens=sum(c.num_tokens for c in completions),
        )


class VLLMTeacher(LocalTeacher):
    """The offline vLLM engine (`pip install 'siked[vllm]'`, Linux with CUDA GPUs)."""

    backend = "vllm"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._llm: Any = None

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                import vllm
            except ImportError:
                raise TeacherError(
                    "teacher.backend=vllm needs vLLM, which is not installed: pip install 'siked[vllm]' "
                    "(Linux with a CUDA GPU); on CPU use teacher.backend=hf or an OpenAI-compatible server"
                ) from None
            self._llm = vllm.LLM(
                model=self.local.model,
                tensor_parallel_size=self.local.tensor_parallel_size,
                seed=self.config.seed,
            )
        return self._llm

    def close(self) -> None:
        self._llm = None

    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        llm = self._engine()
        from vllm import SamplingParams

        config = self.config
        for chunk in chunks(requests, self.local.batch_size):
            params = [
                SamplingParams(
                    n=r.n, temperature=config.temperature, top_p=config.top_p,
                    max_tokens=config.max_tokens, stop=r.stop, seed=r.seed,
                )
                for r in chunk
            ]
            if self.endpoint == "chat":
                outputs = llm.chat([r.messages for r in chunk], params, use_tqdm=False)
            else:
                outputs = llm.generate([r.prompt for r in chunk], params, use_tqdm=False)
            log.record([self._reply(request, output) for request, output in zip(chunk, outputs, strict=True)])

    @staticmethod
    def _reply(request: Request, output: Any) -> Reply:
        completions = sorted(output.outputs, key=lambda c: c.index)[: request.n]
        return Reply(
            request=request,
            sample_indices=list(request.sample_indices[: len(completions)]),
            texts=[c.text for c in completions],
            finish_reasons=[c.finish_reason for c in completions],
            prompt_tokens=len(output.prompt_token_ids or []),
            completion_tokens=sum(len(c.token_ids) for c in completions),
        )
