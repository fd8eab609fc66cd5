"""Throughput of the PoT sandbox pool against one fresh interpreter per program.

    python bench/sandbox.py [--programs N] [--naive-programs M] [--workers W]

Both paths run the same GSM8K-style programs-of-thought (2 of the 22 use sympy through the
prelude); the pool's run is mixed with a few hostile programs (infinite loops, a memory bomb, a fork
bomb, huge output). The naive path is `subprocess.run([python, "-I", "-c", prelude + program])`
with as many programs in flight as the pool has workers, measured on a sample of the well-behaved
programs only (a hostile one would cost it a full timeout each), twice: with the whole prelude, and
with sympy imported only for programs that name it (as the pool's workers are split). The pool
also runs the workload a second time with every program sent to a sympy worker, as the pool did
before its workers were split into the two kinds.

Printed side by side from one run: programs/s of each path and their ratio, plus CPU time per
program for each (caller and every worker process counted), which says what the machine could do
when other processes compete for the CPU, as they may on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from siked.sandbox import BASE_PRELUDE, PRELUDE, SandboxPool, needs_sympy

PROGRAMS = [
    # 1: eggs sold at the market
    "eggs_per_day = 16\neaten = 3\nbaked = 4\nprice = 2\nanswer = (eggs_per_day - eaten - baked) * price",
    # 2: robe fabric
    "blue = 2\nwhite = blue / 2\nanswer = blue + white",
    # 3: house flip profit
    "cost = 80000\nrepairs = 50000\nvalue = (cost + repairs) * 1.5\nanswer = value - cost - repairs",
    # 4: sprints per week, with a function
    "def solution():\n    sprints = 3\n    times = 3\n    meters = 60\n    return sprints * times * meters\n\nanswer = solution()",
    # 5: chicken feed, printing along the way
    "chickens = 20\ncups_each = 3\nmorning = 15\nafternoon = 25\n"
    "total = chickens * cups_each\nfinal = total - morning - afternoon\nprint(final)\nanswer = final",
    # 6: glasses at a discount
    "price = 5\ndiscounted = price * 0.6\npairs = 16 // 2\nanswer = pairs * price + pairs * discounted",
    # 7: sheep in three cities
    "seattle = 20\ncharleston = 4 * seattle\ntoulouse = 2 * charleston\nanswer = seattle + charleston + toulouse",
    # 8: download time with a restart (minutes)
    "size = 200\nrate = 2\nrestart = 20\nfirst = size * 0.4 / rate\nanswer = first + restart + size / rate",
    # 9: distance with Fraction
    "speed = Fraction(60)\nhours = Fraction(3)\nback = Fraction(80) * Fraction(1, 2)\n"
    "answer = float(speed * hours - back)",
    # 10: wages with overtime in a loop
    "hours = 45\nrate = 10\npay = 0\nfor h in range(1, hours + 1):\n    pay += rate * (1.2 if h > 40 else 1)\n"
    "answer = round(pay, 2)",
    # 11: ceil of buses needed
    "students = 132\nseats = 40\nanswer = math.ceil(students / seats)",
    # 12: percentages
    "total = 200\ndanced = total * 0.2\nremaining = total - danced\nanswer = remaining * 0.25",
    # 13: lcm / gcd
    "a, b = 12, 18\nanswer = lcm(a, b) + gcd(a, b)",
    # 14: list comprehension, sum
    "prices = [3.5, 2.25, 4, 1.75]\ncounts = [2, 4, 1, 3]\n"
    "answer = sum(p * c for p, c in zip(prices, counts))",
    # 15: statistics
    "scores = [88, 92, 79, 95, 91]\nanswer = statistics.mean(scores)",
    # 16: sympy equation with solve_it
    "x = Symbol('x')\nsol = solve_it(Eq(3 * x + 12, 48), x)\nanswer = sol[x]",
    # 17: two unknowns with solve_it
    "adults, kids = symbols('adults kids')\n"
    "sol = solve_it([Eq(adults + kids, 40), Eq(12 * adults + 5 * kids, 340)], [adults, kids])\n"
    "answer = sol[adults]",
    # 18: dictionary bookkeeping
    "stock = {'apples': 30, 'pears': 12}\nstock['apples'] -= 7\nstock['pears'] += 5\n"
    "answer = sum(stock.values())",
    # 19: while loop savings
    "saved = 0\nweeks = 0\nwhile saved < 500:\n    saved += 45\n    weeks += 1\nanswer = weeks",
    # 20: fraction of a pizza, exact
    "eaten = Fraction(1, 4) + Fraction(1, 3)\nanswer = 1 - eaten",
    # 21: commented, as LLMs write them (a comment naming sympy's words does not route to sympy)
    "# solve for the money left after the purchases\nbudget = 100\nspent = 3 * 12 + 2 * 7.5\n"
    "# simplify: what remains\nanswer = budget - spent",
    # 22: a docstring-style function with comments
    "def solution():\n    \"\"\"Total legs: 5 dogs and 3 chickens.\"\"\"\n    dogs = 5  # four legs each\n"
    "    chickens = 3  # two legs each\n    return dogs * 4 + chickens * 2\n\nanswer = solution()",
]

HOSTILE = [
    "while True:\n    pass",
    "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass",
    "table = [0] * 10 ** 12",
    "import os\nwhile True:\n    os.fork()",
    "print('x' * 5_000_000)\nanswer = 1",
]


def workload(n: int, seed: int = 0) -> list[str]:
    """n programs: the realistic ones cycled, one hostile program per 1000 (at least one of each
    kind), shuffled."""
    hostile = [HOSTILE[i % len(HOSTILE)] for i in range(max(len(HOSTILE), n // 1000))]
    programs = [PROGRAMS[i % len(PROGRAMS)] for i in range(n - len(hostile))] + hostile
    random.Random(seed).shuffle(programs)
    return programs


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and its reaped children."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                total += sum(proc_cpu_seconds(int(c)) for c in f.read().split())
    except OSError:
        pass
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def run_pool(pool: SandboxPool, programs: list[str]) -> tuple[float, float, collections.Counter]:
    pids = pool.worker_pids()
    cpu0 = own_cpu_seconds() + sum(proc_cpu_seconds(p) for p in pids)
    start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("sandbox pool", total=len(programs))
        results = pool.run_many(programs, progress=lambda k: progress.advance(task, k))
    wall = time.perf_counter() - start
    cpu1 = own_cpu_seconds() + sum(proc_cpu_seconds(p) for p in pool.worker_pids())
    return wall, cpu1 - cpu0, collections.Counter(r.status for r in results)


def run_naive_one(program: str, timeout_s: float, routed: bool) -> str:
    prelude = BASE_PRELUDE if routed and not needs_sympy(program) else PRELUDE
    code = prelude + "\n" + program + "\nprint(repr(answer))\n"
    try:
        done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        return "timeout"
    return "ok" if done.returncode == 0 else "error"


def run_naive(programs: list[str], parallel: int, timeout_s: float,
              routed: bool) -> tuple[float, float, collections.Counter]:
    cpu0 = own_cpu_seconds()
    start = time.perf_counter()
    with Progress(transient=True) as progress, ThreadPoolExecutor(parallel) as executor:
        task = progress.add_task("one interpreter per program", total=len(programs))
        statuses = []
        for status in executor.map(lambda p: run_naive_one(p, timeout_s, routed), programs):
            statuses.append(status)
            progress.advance(task)
    return time.perf_counter() - start, own_cpu_seconds() - cpu0, collections.Counter(statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=3000, help="programs run through the pool")
    parser.add_argument("--naive-programs", type=int, default=30,
                        help="programs run one interpreter each (a sample of the same programs)")
    parser.add_argument("--workers", type=int, default=None, help="pool workers (default: CPU cores)")
    parser.add_argument("--timeout", type=float, default=0.5, help="per-program wall-clock limit (s)")
    args = parser.parse_args()
    console = Console()

    programs = workload(args.programs)
    with SandboxPool(workers=args.workers, timeout_s=args.timeout) as pool:
        pool.run_many(["answer = 1", "answer = Rational(1)"] * pool.workers * 2)  # all workers warm
        pool_wall, pool_cpu, pool_status = run_pool(pool, programs)
        pool._route = lambda code: "sympy"  # the previous design: one kind, sympy loaded everywhere
        one_kind_wall, one_kind_cpu, one_kind_status = run_pool(pool, programs)
        workers = pool.workers
        isolation = pool.isolation
    sample = [PROGRAMS[i % len(PROGRAMS)] for i in range(args.naive_programs)]
    naive = {routed: run_naive(sample, workers, timeout_s=30.0, routed=routed) for routed in (False, True)}

    pool_rate = len(programs) / pool_wall
    table = Table(title=f"PoT sandbox: {workers} workers, {_cpu_cores()} CPU cores, load {os.getloadavg()[0]:.1f}")
    for column in ("path", "programs", "programs/s", "CPU ms/program", "statuses"):
        table.add_column(column)
    sympy_share = sum(needs_sympy(p) for p in programs) / len(programs)
    table.add_row(f"SandboxPool ({100 * sympy_share:.0f}% routed to sympy workers)", str(len(programs)),
                  f"{pool_rate:.0f}", f"{1000 * pool_cpu / len(programs):.2f}", _statuses(pool_status))
    table.add_row("SandboxPool, every program on a sympy worker", str(len(programs)),
                  f"{len(programs) / one_kind_wall:.0f}", f"{1000 * one_kind_cpu / len(programs):.2f}",
                  _statuses(one_kind_status))
    for routed, label in ((False, "whole prelude"), (True, "sympy only when named")):
        naive_wall, naive_cpu, naive_status = naive[routed]
        table.add_row(f"one interpreter per program, {label}", str(len(sample)),
                      f"{len(sample) / naive_wall:.1f}", f"{1000 * naive_cpu / len(sample):.1f}",
                      _statuses(naive_status))
    console.print(table)
    for routed, label in ((False, "whole prelude"), (True, "sympy only when named")):
        naive_wall, naive_cpu, _ = naive[routed]
        console.print(f"pool / one interpreter per program ({label}): throughput "
                      f"{pool_rate / (len(sample) / naive_wall):.0f}x, CPU time per program "
                      f"{(naive_cpu / len(sample)) / (pool_cpu / len(programs)):.0f}x")
    console.print(f"two kinds of worker / every program on a sympy worker: throughput "
                  f"{one_kind_wall / pool_wall:.2f}x, CPU time per program {one_kind_cpu / pool_cpu:.2f}x")
    console.print(f"pool capacity on {_cpu_cores()} idle cores from its CPU time: "
                  f"{_cpu_cores() * len(programs) / pool_cpu:.0f} programs/s")
    console.print(f"isolation: {isolation}")


def _statuses(counter: collections.Counter) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))


def _cpu_cores() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
