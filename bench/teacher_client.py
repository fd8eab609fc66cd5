"""Benchmark of the `openai` teacher client against a local server of known capacity.

The server (stdlib `ThreadingHTTPServer`, in its own process) answers OpenAI-style chat requests;
each request holds one of `--capacity` slots for `--latency` seconds, so the server can do at most
capacity / latency requests per second. Measured, side by side in one run:

1. throughput: siked's request rate over that capacity (target >= 0.9);
2. rerun: requests a second, identical run sends once the first has finished (target 0);
3. kill -9: a teaching subprocess is killed mid-run; requests the server answered that the client
   never saved (lost), and requests the resumed run sends (must equal the missing ones).

    python bench/teacher_client.py [--settings 32x0.5x640 16x0.1x480]

Each setting is CAPACITYxLATENCYxREQUESTS and siked runs at concurrency = capacity. The first
(0.5 s per request, still faster than most LLM completions) also measures the rerun and kill -9.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from siked.config import TeacherConfig
from siked.records import Problem
from siked.teachers import CompletionLog, SolveContext
from siked.teachers.openai_client import OpenAITeacher


class CapacityServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client killed mid-request (the kill -9 run) is expected here


def serve(
    capacity: int, latency: float, port_queue: multiprocessing.Queue, served: Any, received: Any
) -> None:
    """Run the capacity server; `received` counts requests that arrived, `served` replies delivered."""
    slots = threading.BoundedSemaphore(capacity)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as real servers do; else headers and body wait on delayed ACKs

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with received.get_lock():
                received.value += 1
            with slots:
                time.sleep(latency)
            n = int(body.get("n") or 1)
            digest = abs(hash(json.dumps(body, sort_keys=True))) % 10**12
            choices = [
                {"index": i, "message": {"role": "assistant", "content": f"reply {digest} {i}\nThe answer is 1."},
                 "finish_reason": "stop"}
                for i in range(n)
            ]
            raw = json.dumps({"choices": choices, "usage": {"prompt_tokens": 100, "completion_tokens": 10 * n}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            with served.get_lock():
                served.value += 1

    httpd = CapacityServer(("127.0.0.1", 0), Handler)
    port_queue.put(httpd.server_address[1])
    httpd.serve_forever()


def make_problems(count: int) -> list[Problem]:
    return [
        Problem(id=f"bench/{i}", question=f"Question number {i}: what is {i} + 1?", answer=float(i + 1),
                answer_text=str(i + 1), source="bench", split="train")
        for i in range(count)
    ]


def solve(url: str, problems: list[Problem], log_path: Path, concurrency: int, samples: int = 1) -> float:
    config = TeacherConfig(backend="openai", samples=samples, openai={
        "base_url": url, "model": "bench", "concurrency": concurrency, "multi_sample": "separate",
        "backoff_base_s": 0.01,
    })
    context = SolveContext(strategies=["cot"], samples=samples, log_path=log_path, say=lambda _: None)
    started = time.perf_counter()
    OpenAITeacher(config).solve(problems, context)
    return time.perf_counter() - started


KILLED_CLIENT = """
import sys
from pathlib import Path
sys.path.insert(0, {bench_dir!r})
from teacher_client import make_problems, solve
solve(sys.argv[1], make_problems(int(sys.argv[3])), Path(sys.argv[2]), int(sys.argv[4]))
"""


def kill_and_resume(
    url: str, served: Any, received: Any, workdir: Path, count: int, concurrency: int, latency: float
) -> dict[str, int]:
    log_path = workdir / "killed.jsonl"
    script = workdir / "killed_client.py"
    script.write_text(KILLED_CLIENT.format(bench_dir=str(Path(__file__).resolve().parent)))
    start_served, start_received = served.value, received.value
    process = subprocess.Popen([sys.executable, str(script), url, str(log_path), str(count), str(concurrency)])
    while not log_path.exists() or log_path.read_bytes().count(b"\n") < count // 2:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(latency + 0.5)  # what was in flight finishes at the server, for a dead client
    answered = served.value - start_served
    in_flight = received.value - start_received - answered
    with CompletionLog(log_path) as log:
        saved = len(log.entries)
    before = served.value
    solve(url, make_problems(count), log_path, concurrency)
    resumed = served.value - before
    with CompletionLog(log_path) as log:
        complete = len(log.entries)
    return {"answered_before_kill": answered, "saved_before_kill": saved, "lost": answered - saved,
            "in_flight": in_flight,
            "resume_requests": resumed, "missing": count - saved, "complete_after_resume": complete}


def parse_setting(text: str) -> tuple[int, float, int]:
    capacity, latency, requests = text.split("x")
    return int(capacity), float(latency), int(requests)


def start_server(capacity: int, latency: float) -> tuple[multiprocessing.Process, str, Any, Any]:
    port_queue: multiprocessing.Queue = multiprocessing.Queue()
    served, received = multiprocessing.Value("l", 0), multiprocessing.Value("l", 0)
    server = multiprocessing.Process(
        target=serve, args=(capacity, latency, port_queue, served, received), daemon=True
    )
    server.start()
    return server, f"http://127.0.0.1:{port_queue.get(timeout=30)}/v1", served, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--settings", nargs="+", default=["32x0.5x640", "16x0.1x480"], metavar="CAPxLATxN",
        help="server slots x seconds per request x requests sent; the first also runs rerun and kill -9",
    )
    args = parser.parse_args()
    settings = [parse_setting(text) for text in args.settings]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for number, (capacity, latency, count) in enumerate(settings):
            server, url, served, received = start_server(capacity, latency)
            try:
                log_path = workdir / f"run{number}.jsonl"
                seconds = solve(url, make_problems(count), log_path, concurrency=capacity)
                rate, capacity_rate = served.value / seconds, capacity / latency
                lines.append(
                    f"throughput, {capacity} slots x {latency:g} s ({capacity_rate:.0f} requests/s), "
                    f"siked concurrency {capacity}: {count} requests in {seconds:.2f} s = {rate:.1f}/s; "
                    f"ratio to capacity {rate / capacity_rate:.3f} (target >= 0.9)"
                )
                if number == 0:
                    before = served.value
                    rerun_seconds = solve(url, make_problems(count), log_path, concurrency=capacity)
                    lines.append(f"rerun: {served.value - before} requests sent (target 0) in {rerun_seconds:.2f} s")
                    killed = kill_and_resume(url, served, received, workdir, count // 2, capacity, latency)
                    lines.append(
                        f"kill -9 mid-run: {killed['answered_before_kill']} answered, {killed['saved_before_kill']} "
                        f"saved, {killed['lost']} answered but unsaved, {killed['in_flight']} in flight "
                        f"(lost + in flight <= concurrency {capacity}); resume sent "
                        f"{killed['resume_requests']} for {killed['missing']} missing; "
                        f"complete after resume: {killed['complete_after_resume']}/{count // 2}"
                    )
            finally:
                server.terminate()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
