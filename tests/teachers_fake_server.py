"""A fault-injecting OpenAI-compatible HTTP server on 127.0.0.1 for the teacher tests.

Real sockets, real HTTP/1.1 (stdlib `ThreadingHTTPServer`). Each distinct request body is
answered according to `plan(body_hash, attempt)`: None answers normally, otherwise one fault:

- "429": Too Many Requests with `Retry-After: <retry_after>`
- "500": Internal Server Error
- "drop": the connection is closed without a reply
- "truncated": 200 with a well-framed but truncated JSON body
- "cut": 200 whose body stops before its Content-Length, then the connection closes
- "slow": the reply comes after `slow_s` seconds (past the client's timeout)
- "delay": the reply comes after `delay_s` seconds (within the client's timeout)

Every answered request is logged (thread-safe) so tests can compare what the server sent with what
the client saved.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "drop", "truncated", "cut", "slow", "delay")


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(message.get("content", "")) for message in body["messages"])
    return str(body.get("prompt", ""))


def last_question(body: dict[str, Any]) -> str:
    """The question being asked: the text after the last `Question:`."""
    return prompt_text(body).rsplit("Question:", 1)[-1].split("\nAnswer:")[0].strip()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops bursts of connections (SYN retried after 1 s)


@dataclass
class Served:
    hash: str
    n: int
    seed: int | None
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int


@dataclass
class FakeOpenAIServer:
    plan: Callable[[str, int], str | None] = lambda body_hash, attempt: None
    supports_n: bool = True
    reject_n: bool = False
    api_key: str | None = None
    retry_after: str = "1"
    slow_s: float = 1.5
    delay_s: float = 0.2
    latency_s: float = 0.0
    answer: Callable[[dict[str, Any], int], str] | None = None
    """Text of choice i (body, i); default: a deterministic string naming the body, seed and i."""
    finish: Callable[[dict[str, Any], int], str] | None = None
    """`finish_reason` of choice i (body, i); default: "stop"."""
    served: list[Served] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    total_requests: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                server.handle(self, body)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request handling (runs on the server's threads) -------------------------------------

    def handle(self, handler: Any, body: dict[str, Any]) -> None:
        if self.api_key is not None and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            handler._send(401, {"error": {"message": "invalid api key"}})
            return
        digest = body_hash(body)
        with self._lock:
            attempt = self.attempts[digest]
            self.attempts[digest] += 1
            self.total_requests += 1
        fault = self.plan(digest, attempt)
        if fault is not None:
            with self._lock:
                self.faults[fault] += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        n = int(body.get("n") or 1)
        if self.reject_n and n > 1:
            handler._send(400, {"error": {"message": "n must be 1"}})
            return
        if fault == "429":
            handler._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
            return
        if fault == "500":
            handler._send(500, {"error": {"message": "internal error"}})
            return
        if fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in ("slow", "delay"):
            time.sleep(self.slow_s if fault == "slow" else self.delay_s)
        payload = self._completion(body, digest)
        raw = json.dumps(payload).encode()
        if fault == "truncated":
            raw = raw[: len(raw) // 2]
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw) + (100 if fault == "cut" else 0)))
            handler.end_headers()
            handler.wfile.write(raw if fault != "cut" else raw[: len(raw) // 2])
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a "slow" reply past its timeout)
        if fault == "cut":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in ("slow", "truncated"):
            return  # the client saw no usable reply
        choices = payload["choices"]
        with self._lock:
            self.served.append(
                Served(
                    hash=digest, n=n, seed=body.get("seed"),
                    texts=[c["message"]["content"] if "message" in c else c["text"] for c in choices],
                    prompt_tokens=payload["usage"]["prompt_tokens"],
                    completion_tokens=payload["usage"]["completion_tokens"],
                )
            )

    def _completion(self, body: dict[str, Any], digest: str) -> dict[str, Any]:
        n = int(body.get("n") or 1) if self.supports_n else 1
        texts = [
            self.answer(body, i) if self.answer else f"reply {digest} seed {body.get('seed')} choice {i}"
            for i in range(n)
        ]
        chat = "messages" in body
        choices = [
            ({"index": i, "message": {"role": "assistant", "content": text}} if chat else {"index": i, "text": text})
            | {"finish_reason": self.finish(body, i) if self.finish else "stop"}
            for i, text in enumerate(texts)
        ]
        prompt_tokens = len(prompt_text(body).split())
        return {
            "id": f"cmpl-{digest}",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": sum(len(text.split()) for text in texts),
                "total_tokens": prompt_tokens + sum(len(text.split()) for text in texts),
            },
        }
