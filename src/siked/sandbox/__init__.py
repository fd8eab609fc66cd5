"""Sandbox for program-of-thought (PoT) solutions: run untrusted Python, read back its `answer`.

The caller's side is `pool.py` (the pool, routing, the handle on a worker process); the worker's
side is the `worker` package, standard library only and loaded by path in the worker process:
`launcher.py` (launcher and server), `namespaces.py`, `program.py`, `guard.py` (the audit hook),
`prelude.py`, and `protocol.py` (the frames both sides exchange).

Programs never run in the caller's process. A `SandboxPool` keeps warm worker processes; each
program runs in a process forked from a warm worker, so its cost is a fork, not an interpreter
start. One worker is this process tree:

    caller (SandboxPool)
      └─ launcher   `python -I` running `siked.sandbox.worker`: enters new PID and network namespaces, supervises
           └─ server    PID 1 of the new PID namespace: imports the prelude once, serves requests
                └─ program   forked per request: limits, dropped privileges, audit hook, exec(code)

Caller and launcher talk over the launcher's stdin/stdout with length-prefixed JSON frames.

Workers come in two kinds. Forking a process that has imported sympy costs about 1.6 ms more per
program (copy-on-write faults over a heap five times larger), and most programs never use sympy.
So "base" workers load the prelude without sympy and run every program whose code uses none of
the sympy prelude names (SYMPY_NAMES) as a name (comments, strings and attributes do not count);
the others go to "sympy" workers, which load all of it. A program that reaches a sympy name
without spelling it (`eval("Sym" + "bol")`) stops on a base worker with a NameError for that name
and is run again, from the start and within what is left of its time limit, on a sympy worker.
What a base worker cannot make identical: a program that looks its names up itself
(`globals().get("solve")`, `dir()`), catches that NameError itself, checks whether sympy is
loaded, or imports sympy itself (it then pays the import inside its own time limit); and, as
RLIMIT_AS is absolute, a base worker leaves a program sympy's share of memory more room.

Programs see the PoT prelude (`worker/prelude.py`: math and `from math import *`, Fraction, Decimal,
statistics, itertools, collections, sympy with Symbol/symbols/Eq/solve/simplify/Rational, and
`solve_it(equations, variables)`), run with `__name__ == "__main__"`, and report the variable
`answer`. Other modules (numpy, ...) can be imported; they load in the program's own process.

What holds a hostile program, strongest first (Linux; each layer degrades gracefully where the
kernel or the privileges do not allow it, and `SandboxPool.isolation` says what is in force):
  - the server SIGKILLs the program at the wall-clock timeout; the caller replaces a server that
    does not answer in time; RLIMIT_CPU backs both;
  - PID namespace: the server is PID 1, so it cannot be killed from inside, every leftover process is
    killed with kill(-1) after each program, and all of them die with the server;
  - network namespace: no interface but a down loopback;
  - mount namespace: the whole file system read-only, a private /proc (no other process's environ),
    the program's working directory an empty directory on a private, size-capped tmpfs;
  - as root: the program runs as uid 65534 (so RLIMIT_NPROC=0 forbids fork and threads, and it cannot
    signal root processes) with the file-system uid kept at 0 so that it can still import modules
    from a root-only Python install, without capabilities, with no_new_privs;
  - rlimits: address space, CPU, file size, open files, processes, no core files;
  - a stripped environment (the caller's variables never reach the worker), stdin from /dev/null,
    output captured through a pipe and capped;
  - an audit hook (defence in depth only): refuses fork/exec/spawn/subprocess/kill, sockets, ctypes,
    writes outside the working directory and reads of other processes' /proc entries.
Files readable by the worker's user stay readable to programs; nothing can be written outside the
program's own directory, and no network is reachable to send anything anywhere.
"""

from siked.sandbox.pool import ExecResult, SandboxError, SandboxPool, needs_sympy
from siked.sandbox.worker.prelude import BASE_PRELUDE, PRELUDE, SYMPY_NAMES

__all__ = ["BASE_PRELUDE", "PRELUDE", "SYMPY_NAMES", "ExecResult", "SandboxError", "SandboxPool", "needs_sympy"]
