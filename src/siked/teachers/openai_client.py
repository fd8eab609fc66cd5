"""The `openai` teacher: any OpenAI-compatible server (vLLM serve, llama.cpp server, hosted APIs).

Requests are sent with `httpx.AsyncClient` under a bounded concurrency. Failures that a later
attempt can fix (HTTP 429, 408, 409, 5xx, timeouts, dropped connections, malformed or truncated
JSON) are retried with exponential backoff and jitter; a `Retry-After` (or `retry-after-ms`) header
is honoured and pauses every request, not only the one that got it. A request that fails for good
is recorded in the log, sending stops, what is in flight is still saved, and a `TeacherError` names
the server and its last answer.

Samples: with `multi_sample="auto"` a request asks for all missing samples of a prompt at once
(`n`); when the server returns fewer choices (llama.cpp ignores `n`) or rejects `n`, the rest, and
every later prompt, is requested as one seeded request per sample.

Why httpx and not the official `openai` client: its retries would replace only the retry loop below,
and not with the same behaviour: its backoff is fixed (0.5 s doubling to 8 s, not
`teacher.openai.backoff_base_s`/`backoff_max_s`, unseeded), a `Retry-After` pauses only its own request and
one over two minutes is not retried, the retries it made are not reported (the ledger counts them),
and a malformed 200 reply is not retried. Keeping those would mean `max_retries=0` and this loop
anyway, plus a multi-second import.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from siked.config import TeacherConfig
from siked.errors import one_line
from siked.records import Problem, Solution
from siked.teachers.base import Failure, Reply, Request, SolveContext, TeacherError
from siked.teachers.cache import CompletionLog
from siked.teachers.llm import LLMTeacher

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
MAX_RETRY_AFTER_S = 600.0
"""Longest `Retry-After` honoured; a server asking for more is waited on for this long."""


class RequestFailed(Exception):
    """One request that will not succeed; `retries` attempts were made after the first."""

    def __init__(self, message: str, retries: int) -> None:
        super().__init__(message)
        self.retries = retries


class NRejected(Exception):
    """The server refused a request asking for several samples (`n` > 1)."""


@dataclass
class _RunState:
    failures: list[str] = field(default_factory=list)
    fatal: BaseException | None = None
    stop: bool = False


class OpenAITeacher(LLMTeacher):
    backend = "openai"

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__(config)
        self.server = config.openai
        if not self.server.base_url:
            raise TeacherError(
                "teacher.backend=openai needs teacher.openai.base_url (e.g. http://127.0.0.1:8000/v1 or --base-url)"
            )
        self.base_url = self.server.base_url.rstrip("/") + "/"
        self._model = self.server.model
        self._use_n = self.server.multi_sample != "separate"
        self._paused_until = 0.0
        self._rng = random.Random(config.seed)

    # -- identity --------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._model or "unknown"

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def prices(self) -> tuple[float | None, float | None]:
        return self.server.price_prompt_per_mtok, self.server.price_completion_per_mtok

    @property
    def endpoint_url(self) -> str:
        return self.base_url + ("chat/completions" if self.endpoint == "chat" else "completions")

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "siked-teacher"}
        key = os.environ.get(self.server.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def resolve_model(self) -> str:
        """The configured model, or the first one the server lists at `GET /models`."""
        if self._model:
            return self._model
        url = self.base_url + "models"
        try:
            response = httpx.get(url, headers=self._headers(), timeout=min(30.0, self.server.request_timeout_s))
            response.raise_for_status()
            models = [entry["id"] for entry in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise TeacherError(
                f"teacher.openai.model is not set and {url} did not list the served models ({one_line(exc)}); set --model"
            ) from None
        if not models:
            raise TeacherError(f"teacher.openai.model is not set and {url} lists no model; set --model")
        self._model = str(models[0])
        return self._model

    def solve(self, problems: Sequence[Problem], context: SolveContext) -> list[Solution]:
        self.resolve_model()
        return super().solve(problems, context)

    # -- sending ---------------------------------------------------------------------------

    def generate(self, requests: list[Request], log: CompletionLog) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._generate(requests, log))
            return
        # Called from inside an event loop (a notebook): run ours on a separate thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._generate(requests, log)).result()

    async def _generate(self, requests: list[Request], log: CompletionLog) -> None:
        config = self.server
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for request in requests:
            for part in self._split(request):
                queue.put_nowait(part)
        state = _RunState()
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        timeout = httpx.Timeout(config.request_timeout_s, connect=min(30.0, config.request_timeout_s))
        async with httpx.AsyncClient(headers=self._headers(), limits=limits, timeout=timeout) as client:
            workers = [
                asyncio.create_task(self._worker(client, queue, log, state))
                for _ in range(config.concurrency)
            ]
            try:
                await queue.join()
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                try:
                    await log.drain()
                except Exception as exc:
                    state.fatal = state.fatal or exc
        if state.fatal is not None:
            raise TeacherError(f"teacher stopped: {state.fatal}") from state.fatal
        if len(state.failures) > config.max_failed_requests:
            shown = "\n  ".join(state.failures[:3])
            raise TeacherError(
                f"{len(state.failures)} request(s) to {self.endpoint_url} failed for good "
                f"(teacher.openai.max_failed_requests={config.max_failed_requests}); everything that arrived "
                f"is saved in {log.path} and a rerun sends only the rest. First failure(s):\n  {shown}"
            )

    def _split(self, request: Request) -> list[Request]:
        """The request as sent: whole (with `n`) or as one seeded request per sample."""
        if self._use_n or request.n == 1:
            return [request]
        return [
            request.subset([index], self.request_seed(request.problem_id, request.strategy, index))
            for index in request.sample_indices
        ]

    async def _worker(
        self, client: httpx.AsyncClient, queue: asyncio.Queue[Request], log: CompletionLog, state: _RunState
    ) -> None:
        while True:
            request = await queue.get()
            try:
                if log.write_error is not None:
                    state.stop = True
                if not state.stop:
                    await self._handle(client, request, queue, log, state)
            except Exception as exc:  # saving failed (disk full, ...): stop sending, report it
                state.fatal = state.fatal or exc
                state.stop = True
            finally:
                queue.task_done()

    async def _handle(
        self, client: httpx.AsyncClient, request: Request, queue: asyncio.Queue[Request],
        log: CompletionLog, state: _RunState,
    ) -> None:
        try:
            reply = await self._send(client, request)
        except NRejected:
            self._use_n = False
            for part in self._split(request):
                queue.put_nowait(part)
            return
        except RequestFailed as exc:
            log.record_failure(Failure(request, str(exc), exc.retries))
            state.failures.append(f"{request.problem_id} [{request.strategy}]: {exc}")
            if len(state.failures) > self.server.max_failed_requests:
                state.stop = True
            return
        if reply.sample_indices != request.sample_indices:
            missing = request.sample_indices[len(reply.sample_indices):]
            if self.server.multi_sample == "auto":
                self._use_n = False
            rest = request.subset(missing, self.request_seed(request.problem_id, request.strategy, missing[0]))
            for part in self._split(rest):
                queue.put_nowait(part)
        if reply.texts:
            log.submit(reply)  # durable with the next group commit; the worker moves on

    def _body(self, request: Request) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {
            "model": self.model_name,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
            "stop": request.stop,
            "seed": request.seed,
        }
        if request.n > 1:
            body["n"] = request.n
        if self.endpoint == "chat":
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        return body

    async def _send(self, client: httpx.AsyncClient, request: Request) -> Reply:
        url, body = self.endpoint_url, self._body(request)
        started = time.monotonic()
        retries = 0
        while True:
            await self._wait_for_pause()
            retry_after: float | None = None
            try:
                response = await client.post(url, json=body)
            except httpx.TimeoutException:
                problem = f"no complete reply within {self.server.request_timeout_s:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc or 'closed'})"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return self._parse(request, response, retries, time.monotonic() - started)
                    except (ValueError, KeyError, TypeError, IndexError) as exc:
                        problem = f"malformed reply ({exc}): {_snippet(response)}"
                elif status in RETRYABLE_STATUS or status >= 500:
                    problem = f"HTTP {status}: {_snippet(response)}"
                    retry_after = parse_retry_after(response.headers)
                elif request.n > 1 and status in (400, 422) and self.server.multi_sample == "auto":
                    raise NRejected()
                else:
                    raise RequestFailed(f"{url} answered HTTP {status}: {_snippet(response)}{self._hint(status)}", retries)
            if retries >= self.server.max_retries:
                raise RequestFailed(f"{url}: gave up after {retries + 1} attempt(s); last answer: {problem}", retries)
            delay = backoff_delay(retries, self.server.backoff_base_s, self.server.backoff_max_s, retry_after, self._rng)
            if retry_after is not None:
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
            retries += 1
            await asyncio.sleep(delay)

    async def _wait_for_pause(self) -> None:
        while (wait := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            present = "is set" if os.environ.get(self.server.api_key_env) else "is NOT set"
            return f" (the API key comes from the environment variable {self.server.api_key_env}, which {present})"
        if status == 404:
            return f" (is the model name {self.model_name!r} served there, and is the base URL right?)"
        return ""

    def _parse(self, request: Request, response: httpx.Response, retries: int, seconds: float) -> Reply:
        data = response.json()
        choices = data["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError("no choices")
        choices = sorted(choices, key=lambda choice: int(choice.get("index", 0)))[: request.n]
        chat = self.endpoint == "chat"
        texts = []
        for choice in choices:
            text = choice["message"]["content"] if chat else choice["text"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError(f"choice text is a {type(text).__name__}")
            texts.append(text)
        usage = data.get("usage") or {}
        return Reply(
            request=request,
            sample_indices=request.sample_indices[: len(texts)],
            texts=texts,
            finish_reasons=[choice.get("finish_reason") for choice in choices],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            retries=retries,
            seconds=seconds,
        )


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return min(max(float(millis) / 1000.0, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before retry `attempt + 1`: the server's `Retry-After` plus a little jitter when given,
    else exponential backoff with jitter (between half and all of `base * 2**attempt`, at most `cap`)."""
    if retry_after is not None:
        return retry_after + rng.uniform(0.0, base)
    ceiling = min(cap, base * 2.0**attempt)
    return rng.uniform(ceiling / 2.0, ceiling)


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body
        text = repr(response.content[:limit])
    text = " ".join(text.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
