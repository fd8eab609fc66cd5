"""Training throughput of the embedded student: length-grouped batches against random ones, and
LoRA against full fine-tuning.

    python bench/training.py [--compare grouping|lora-full] [--modes M,...] [--examples N] [--steps N] [--max-length N]

`--compare grouping` (the default) trains LoRA on mixed-length data, the reference teacher's
CoT, L2M and PoT solutions of gsm_symbolic problems (the embedded default's teacher data), with the
current path (`train.group_by_length=false`: random batches of 2, 4 accumulation steps), the new
one (`group_by_length=true`, same batches), and with `--modes ...` also: `grouped-8x1`, one batch
of 8 per step (at max length 512 on a CPU it took over 13 GB and was OOM-killed on a 24 GB machine);
`packed-2x4` and `packed-8x1`, padding-free rows (`train.padding_free`: each micro-batch
concatenated, attention kept inside each example by the position ids); it prints non-padding
tokens/s of each and their ratios to the current path. `--compare lora-full` is below.
`--compare profile` traces `--steps` optimizer steps (after 2 unprofiled ones) of the grouped
2x4 path with torch's profiler and prints where the time goes: the operators by self time, and
the same time in groups (the LM head and its loss, the other matmuls, attention, LoRA's small
matmuls, the optimizer, dtype casts, the rest).
On a busy machine, set OMP_NUM_THREADS=1: two threads that wait for each other at every operation
slow down far more than the load alone explains, and unevenly from run to run.

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
import time
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


def mixed_length_examples(count: int) -> list:
    from siked.data import load_problems
    from siked.student import TrainExample
    from siked.teachers.reference import BUILDERS

    examples = []
    for problem in load_problems("gsm_symbolic", "train", limit=count):
        for strategy, build in BUILDERS.items():
            solution = build(problem)
            if solution is not None:
                examples.append(TrainExample(problem.question, strategy, solution))
    return examples


GROUPING_MODES = {
    "random-2x4": {"group_by_length": False},
    "grouped-2x4": {"group_by_length": True},
    "grouped-8x1": {"group_by_length": True, "per_device_batch_size": 8, "gradient_accumulation_steps": 1},
    "packed-2x4": {"padding_free": True},
    "packed-8x1": {"padding_free": True, "per_device_batch_size": 8, "gradient_accumulation_steps": 1},
}


def worker(mode: str, args: argparse.Namespace) -> None:
    """One training run in this process; prints its TrainResult as JSON on the last line."""
    import siked.student.train
    from siked.config import SikedConfig
    from siked.student import train_student

    if mode == "lora-default-malloc":
        siked.student.train.keep_freed_memory = lambda: False
    cfg = SikedConfig()
    update = {"full_finetune": mode == "full", "max_length": args.max_length, "save_steps": 10_000,
              "group_by_length": False, "padding_free": False, **GROUPING_MODES.get(mode, {})}
    cfg.train = cfg.train.model_copy(update=update)
    examples = mixed_length_examples(args.examples) if mode in GROUPING_MODES else training_examples(args.examples)
    with tempfile.TemporaryDirectory(prefix=f"siked-bench-{mode}-") as out:
        result = train_student(examples, cfg, Path(out) / "student", max_steps=args.steps, progress=False)
    print(json.dumps(result.to_json()))


# First match wins; an operator's name and input shapes are matched. The vocabulary (49152) also
# shows as chunks of 32768 and 16384 in the loss's operators.
PROFILE_GROUPS = (
    ("LM head + loss", ("49152", "32768", "16384", "cross_entropy", "log_softmax", "nll_loss")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax")),
    ("LoRA matmuls", (", 16]", "[16, ")),
    ("other matmuls", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("optimizer", ("adam", "_foreach", "Optimizer")),
    ("dtype casts and copies", ("aten::to", "aten::copy_", "aten::_to_copy", "aten::clone")),
)


def profile_worker(args: argparse.Namespace) -> None:
    """Profile `args.steps` optimizer steps of LoRA training (grouped 2x4) and print where the time goes."""
    from collections import defaultdict

    import torch
    from transformers import TrainerCallback

    from siked.config import SikedConfig
    from siked.student import train_student
    from siked.student.trainer_args import training_dtype

    skip = 2

    class ProfileSteps(TrainerCallback):
        profiler = None

        def on_step_begin(self, _args, state, control, **kwargs):
            if state.global_step == skip:
                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                       record_shapes=True)
                self.profiler.__enter__()
                self.started = time.perf_counter()

        def on_step_end(self, _args, state, control, **kwargs):
            if self.profiler is not None and state.global_step == skip + args.steps:
                self.wall = time.perf_counter() - self.started
                self.profiler.__exit__(None, None, None)
                self.events = self.profiler.key_averages(group_by_input_shape=True)
                self.profiler = None

    cfg = SikedConfig()
    cfg.train = cfg.train.model_copy(update={"max_length": args.max_length, "save_steps": 10_000,
                                             "group_by_length": True})
    probe = ProfileSteps()
    with tempfile.TemporaryDirectory(prefix="siked-bench-profile-") as out:
        train_student(mixed_length_examples(args.examples), cfg, Path(out) / "student",
                               max_steps=skip + args.steps, progress=False, callbacks=[probe])
    rows = [(e.key, str(e.input_shapes), e.self_cpu_time_total / 1e6, e.count) for e in probe.events]
    total = sum(r[2] for r in rows)
    console.print(f"{args.steps} profiled steps: {probe.wall:.1f} s wall, {total:.1f} s of operator self time "
                  f"(training dtype {training_dtype(cfg.train)}, torch threads {torch.get_num_threads()})")
    table = Table(title="operators by self time (top 20)")
    for column in ("operator", "input shapes", "calls", "self s", "share"):
        table.add_column(column, justify="left" if column in ("operator", "input shapes") else "right")
    for key, shapes, seconds, calls in sorted(rows, key=lambda r: -r[2])[:20]:
        table.add_row(key, shapes[:60], str(calls), f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(table)
    groups: dict[str, float] = defaultdict(float)
    for key, shapes, seconds, _ in rows:
        name = f"{key} {shapes}"
        group = next((g for g, needles in PROFILE_GROUPS if any(n in name for n in needles)), "the rest")
        groups[group] += seconds
    summary = Table(title="self time in groups")
    summary.add_column("group")
    summary.add_column("self s", justify="right")
    summary.add_column("share", justify="right")
    for group, seconds in sorted(groups.items(), key=lambda g: -g[1]):
        summary.add_row(group, f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(summary)
    print(json.dumps({"wall_s": probe.wall, "self_s": total, "groups": groups}))


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
    parser.add_argument("--compare", choices=["grouping", "lora-full", "profile"], default="grouping")
    parser.add_argument("--modes", default="random-2x4,grouped-2x4",
                        help="grouping: the runs to compare, comma-separated (random-2x4 always runs).")
    parser.add_argument("--examples", type=int, default=None,
                        help="Problems (grouping: each gives up to 3 examples; default 80) or examples (32).")
    parser.add_argument("--steps", type=int, default=None,
                        help="Optimizer steps per run, 8 sequences each (default: grouping 24, lora-full 4).")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--worker", choices=["lora", "full", "lora-default-malloc", "profile", *GROUPING_MODES],
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    grouping = args.compare == "grouping"
    args.examples = args.examples or (80 if grouping else 32)
    args.steps = args.steps or (24 if grouping else 4)
    if args.compare == "profile" and args.steps > 8:
        args.steps = 4  # a trace of more steps holds GBs
    if args.worker == "profile":
        profile_worker(args)
        return
    if args.worker:
        worker(args.worker, args)
        return
    if args.compare == "profile":
        command = [sys.executable, __file__, "--worker", "profile", "--examples", str(args.examples),
                   "--steps", str(args.steps), "--max-length", str(args.max_length)]
        raise SystemExit(subprocess.run(command).returncode)
    if grouping:
        compare_grouping(args)
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


def compare_grouping(args: argparse.Namespace) -> None:
    from siked.student.models import bf16_supported, default_device

    device = default_device()
    console.print(f"device {device}, bf16 {bf16_supported(device)}, load average {os.getloadavg()[0]:.2f}")
    modes = ["random-2x4", *(m for m in args.modes.split(",") if m in GROUPING_MODES and m != "random-2x4")]
    runs = {}
    for mode in modes:  # each run printed as it ends, so a cut-short bench keeps its rows
        runs[mode] = run_worker(mode, args)
        console.print(f"{mode}: {runs[mode]['tokens_per_s']:,.1f} non-padding tokens/s "
                      f"({runs[mode]['train_tokens']:,} in {runs[mode]['runtime_s']:.1f} s), "
                      f"load average {os.getloadavg()[0]:.2f}")
    table = Table(title=f"LoRA on SmolLM2-135M, mixed-length CoT/L2M/PoT targets: {args.steps} steps x 8 "
                        f"sequences, max length {args.max_length}")
    for column in ("run", "non-padding tokens", "seconds", "tokens/s", "vs random-2x4", "peak MiB", "final loss"):
        table.add_column(column, justify="left" if column == "run" else "right")
    base = runs["random-2x4"]["tokens_per_s"]
    for mode, r in runs.items():
        table.add_row(mode, f"{r['train_tokens']:,}", f"{r['runtime_s']:.1f}", f"{r['tokens_per_s']:,.1f}",
                      f"{r['tokens_per_s'] / base:.2f}x", f"{r['peak_memory_mb']:,.0f}",
                      f"{r['losses'][-1]:.3f}" if r["losses"] else "-")
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps({mode: {"tokens_per_s": r["tokens_per_s"], "ratio": r["tokens_per_s"] / base}
                      for mode, r in runs.items()}))


if __name__ == "__main__":
    main()
