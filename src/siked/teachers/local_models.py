"""Teachers that run a model in this process: `hf` (transformers, CPU or GPU) and `vllm` (GPU).

Both generate in chunks of `teacher.batch_size` prompts and save each chunk's completions in the
completion log before starting the next, so an interrupted run keeps every finished chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

from siked.teachers.base import Reply, Request, TeacherError, stable_seed
from siked.teachers.cache import CompletionLog
from siked.teachers.llm import LLMTeacher


def chunks(requests: Sequence[Request], size: int) -> Iterator[list[Request]]:
    for start in range(0, len(requests), size):
        yield list(requests[start: start + size])


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text up to the first stop string, and whether one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


class HFTeacher(LLMTeacher):
    """A local transformers model: batched sampling with left padding, seeded per chunk."""

    backend = "hf"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if not config.model:
            raise TeacherError(
                "teacher.backend=hf needs teacher.model: a hub id, a local model directory, a .gguf "
                "file or embedded:smollm2"
            )
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            from siked.student.models import ModelError, load_model

            try:
                self._model, self._tokenizer = load_model(self.config.model, dtype="auto")
            except ModelError as exc:
                raise TeacherError(f"hf teacher: {exc}") from None
            self._tokenizer.padding_side = "left"
        return self._model, self._tokenizer

    def close(self) -> None:
        self._model = self._tokenizer = None

    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        model, tokenizer = self._load()
        # A batch shares `n` and stop strings; group them without reordering more than needed.
        ordered = sorted(requests, key=lambda r: (r.n, tuple(r.stop)))
        for _, same in groupby(ordered, key=lambda r: (r.n, tuple(r.stop))):
            for chunk in chunks(list(same), self.config.batch_size):
                log.record(self._generate_chunk(model, tokenizer, chunk))

    def _prompt(self, tokenizer: Any, request: Request) -> str:
        if request.messages is None:
            return request.prompt or ""
        if not getattr(tokenizer, "chat_template", None):
            raise TeacherError(
                f"hf teacher: {self.config.model!r} has no chat template; use teacher.endpoint=completions"
            )
        return tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)

    def _generate_chunk(self, model: Any, tokenizer: Any, chunk: list[Request]) -> list[Reply]:
        import torch

        config = self.config
        chat = chunk[0].messages is not None
        encoded = tokenizer(
            [self._prompt(tokenizer, r) for r in chunk],
            return_tensors="pt", padding=True, add_special_tokens=not chat,
        ).to(model.device)
        n = chunk[0].n
        sampling = config.temperature > 0
        torch.manual_seed(stable_seed(*(r.seed for r in chunk)))
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "do_sample": sampling,
            "num_return_sequences": n if sampling else 1,
            "pad_token_id": tokenizer.pad_token_id,
            "stop_strings": chunk[0].stop or None,
            "tokenizer": tokenizer,
        }
        if sampling:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        with torch.no_grad():
            output = model.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        per_prompt = n if sampling else 1
        replies = []
        for i, request in enumerate(chunk):
            rows = new_tokens[i * per_prompt: (i + 1) * per_prompt]
            texts, finishes, used = [], [], 0
            for row in rows:
                kept = row[row != tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else row
                used += int(kept.numel())
                text, stopped = cut_at_stop(tokenizer.decode(kept, skip_special_tokens=True), request.stop)
                texts.append(text)
                finishes.append("stop" if stopped or kept.numel() < config.max_tokens else "length")
            if not sampling:  # greedy: every sample is the same text
                texts, finishes = texts * n, finishes * n
            replies.append(
                Reply(
                    request=request,
                    sample_indices=list(request.sample_indices),
                    texts=texts,
                    finish_reasons=finishes,
                    prompt_tokens=int(encoded["attention_mask"][i].sum()),
                    completion_tokens=used,
                )
            )
        return replies


class VLLMTeacher(LLMTeacher):
    """The offline vLLM engine (`pip install 'siked[vllm]'`, Linux with CUDA GPUs)."""

    backend = "vllm"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if not config.model:
            raise TeacherError("teacher.backend=vllm needs teacher.model: a hub id or a local model directory")
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
                model=self.config.model,
                tensor_parallel_size=self.config.tensor_parallel_size,
                seed=self.config.seed,
            )
        return self._llm

    def close(self) -> None:
        self._llm = None

    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        llm = self._engine()
        from vllm import SamplingParams

        config = self.config
        for chunk in chunks(requests, config.batch_size):
            params = [
                SamplingParams(
                    n=r.n, temperature=config.temperature, top_p=config.top_p,
                    max_tokens=config.max_tokens, stop=r.stop, seed=r.seed,
                )
                for r in chunk
            ]
            if config.endpoint == "chat":
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
