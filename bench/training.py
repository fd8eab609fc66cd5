"""Training throughput and peak memory of the embedded student: LoRA against full fine-tuning.

    python bench/training.py [--examples 32] [--steps 4] [--max-length 512]

Both runs fine-tune SmolLM2-135M-Instruct with `siked.student.train_student` on the same
GSM8K-derived `[cot]` targets (worked solutions without calculator annotations), with the
paper's batch settings (2 per device x 4 accumulation steps) and the hardware's mixed precision.
Each run is its own process, so its peak memory is its own: peak GPU memory allocated on a GPU,
peak resident memory (model load included) on a CPU.

Printed side by side from one run: training tokens/s (prompt and completion tokens, no padding)
and peak memory of each, and the ratios LoRA/full for speed and full/LoRA for memory. On a CPU, a
third run trains LoRA with glibc's default allocation (large tensors mmapped and unmapped at every
step) instead of siked's `keep_freed_memory`, and the speed ratio of the two is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
console = Console()


def training_examples(count: int) -> list:
    from siked.data import load_problems
    from siked.student import TrainExample

    path = DATA / "gsm8k" / "train.jsonl"
    if path.is_file():
        problems = load_problems("gsm8k", "train", data_file=path, limit=count)
    else:
        console.print(f"[yellow]{path} not found: using gsm_symbolic training problems[/]")
        problems = load_problems("gsm_symbolic", "train", limit=count)
    return [
        TrainExample(p.question, "cot", re.sub(r"<<[^>]*>>", "", p.solution or "").strip()
                     + f"\nThe answer is {p.answer_text}.")
        for p in problems
    ]


def worker(mode: str, args: argparse.Namespace) -> None:
    """One training run in this process; prints its TrainResult as JSON on the last line."""
    import siked.student.train
    from siked.config import SikedConfig
    from siked.student import train_student

    if mode == "lora-default-malloc":
        siked.student.train.keep_freed_memory = lambda: False
    cfg = SikedConfig()
    cfg.train = cfg.train.model_copy(update={"full_finetune": mode == "full", "max_length": args.max_length,
                                             "save_steps": 10_000})
    with tempfile.TemporaryDirectory(prefix=f"siked-bench-{mode}-") as out:
        result = train_student(training_examples(args.examples), cfg, Path(out) / "student",
                               max_steps=args.steps, progress=False)
    print(json.dumps(result.to_json()))


def run_worker(mode: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", mode, "--examples", str(args.examples),
               "--steps", str(args.steps), "--max-length", str(args.max_length)]
    with console.status(f"training ({mode}, {args.steps} steps)"):
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="Optimizer steps per run (8 sequences each).")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--worker", choices=["lora", "full", "lora-default-malloc"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return

    from siked.student.models import bf16_supported, default_device

    device = default_device()
    console.print(f"device {device}, bf16 {bf16_supported(device)}, load average {os.getloadavg()[0]:.2f}")
    modes = ("lora", "full", "lora-default-malloc") if device == "cpu" else ("lora", "full")
    runs = {mode: run_worker(mode, args) for mode in modes}
    memory = "peak GPU memory (MiB)" if device == "cuda" else "peak RSS (MiB)"
    table = Table(title=f"fine-tuning SmolLM2-135M: {args.steps} steps x 8 sequences, max length {args.max_length}")
    for column in ("run", "tokens", "seconds", "tokens/s", memory, "final loss"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for mode, r in runs.items():
        table.add_row(mode, f"{r['train_tokens']:,}", f"{r['runtime_s']:.1f}", f"{r['tokens_per_s']:,.1f}",
                      f"{r['peak_memory_mb']:,.0f}", f"{r['losses'][-1]:.3f}" if r["losses"] else "-")
    console.print(table)
    lora, full = runs["lora"], runs["full"]
    speed = lora["tokens_per_s"] / full["tokens_per_s"]
    saving = full["peak_memory_mb"] / lora["peak_memory_mb"]
    console.print(f"LoRA / full tokens/s: {speed:.2f}x; full / LoRA peak memory: {saving:.2f}x")
    if "lora-default-malloc" in runs:
        default = runs["lora-default-malloc"]
        console.print(f"LoRA with freed memory kept / with glibc's default allocation: tokens/s "
                      f"{lora['tokens_per_s'] / default['tokens_per_s']:.2f}x, peak RSS "
                      f"{lora['peak_memory_mb'] / default['peak_memory_mb']:.2f}x")
    print(json.dumps({"lora_tokens_per_s": lora["tokens_per_s"], "full_tokens_per_s": full["tokens_per_s"],
                      "lora_peak_mb": lora["peak_memory_mb"], "full_peak_mb": full["peak_memory_mb"],
                      "lora_over_full_speed": speed, "full_over_lora_memory": saving}))


if __name__ == "__main__":
    main()
