"""The PoT sandbox against real worker processes: normal programs, hostile programs, lifecycle.

Every hostile case must end as an ExecResult with a sensible status, leave the pool able to run
the next program, and leave nothing behind: no file touched outside the program's directory, no
connection made, no process left over. The hostile suite runs twice: with every isolation layer the
machine allows, and in the degraded mode without namespaces (rlimits, uid and audit hook only).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

import siked.sandbox.pool as sandbox
from siked.config import SandboxConfig
from siked.sandbox import ExecResult, SandboxError, SandboxPool, needs_sympy
from siked.sandbox.worker.protocol import ANSWER_CHARS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox needs Linux")

SECRET_NAME = f"SIKED_SANDBOX_TEST_SECRET_{uuid.uuid4().hex}"
SECRET_VALUE = uuid.uuid4().hex


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return found


def descendants(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child))
    return out


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


def attempts_program(header: str, attempts: dict[str, str]) -> str:
    """A program that tries each statement and sets `answer` to the names of those that worked."""
    code = header + "\nsucceeded = []\n"
    for name, statement in attempts.items():
        code += f"try:\n{textwrap.indent(statement, '    ')}\n    succeeded.append({name!r})\n"
        code += "except Exception:\n    pass\n"
    return code + "answer = succeeded\n"


def assert_serves(pool: SandboxPool) -> None:
    """The pool still runs a normal program correctly on every worker (base and sympy)."""
    n = pool.workers * 2
    results = pool.run_many([f"answer = {i} * 7" for i in range(n)] + [f"answer = int(Rational({i}) * 7)" for i in range(n)])
    assert [r.answer for r in results] == [str(i * 7) for i in range(n)] * 2
    assert all(r.status == "ok" for r in results)


def assert_no_program_processes(pool: SandboxPool) -> None:
    """Below each worker's launcher there is exactly its server: no program outlived its run."""
    for launcher in pool.worker_pids():
        assert len(descendants(launcher)) == 1, f"leftover processes under worker {launcher}"


def assert_no_program_files(pool: SandboxPool) -> None:
    """Every worker's program directory is empty again, as each server sees it (through
    /proc/PID/root, which shows the server's private tmpfs when it has one)."""
    worker_dirs = list(Path(pool._base_dir).glob("worker-*"))
    assert len(worker_dirs) == len(pool.worker_pids()) == 2 * pool.workers  # base and sympy kinds
    for launcher in pool.worker_pids():
        server = children(launcher)[0]
        for worker_dir in worker_dirs:
            assert os.listdir(f"/proc/{server}/root{worker_dir}") == []


@pytest.fixture(scope="module", autouse=True)
def secret_in_environment():
    os.environ[SECRET_NAME] = SECRET_VALUE  # set before any pool starts
    yield
    os.environ.pop(SECRET_NAME, None)


@pytest.fixture(scope="module")
def pool(secret_in_environment):
    with SandboxPool(workers=2, timeout_s=5.0) as pool:
        yield pool


@pytest.fixture(scope="module", params=["isolated-base", "isolated-sympy", "degraded-base", "degraded-sympy"])
def hostile_pool(request, secret_in_environment):
    """A pool whose programs all go first to one kind of worker, with or without namespaces."""
    isolation, kind = request.param.split("-")
    pool = SandboxPool(workers=2, timeout_s=5.0)
    pool._use_namespaces = isolation == "isolated"
    pool._route = lambda code: kind
    with pool:
        pool.run("answer = 1")
        yield pool


# ------------------------------------------------------------------------------------------------
# normal programs
# ------------------------------------------------------------------------------------------------


def test_arithmetic_and_output(pool):
    result = pool.run("cost = 12 * 3\nprint('cost', cost)\nanswer = cost - 5")
    assert result == ExecResult("ok", "31", 31.0, "cost 36\n", None, result.seconds)
    assert 0 < result.seconds < 5


def test_fraction_answer(pool):
    result = pool.run("answer = Fraction(1, 2) + Fraction(3, 1)")
    assert (result.status, result.answer, result.answer_float) == ("ok", "7/2", 3.5)


def test_solve_it_with_sympy(pool):
    code = (
        "x, y = symbols('x y')\n"
        "sol = solve_it([Eq(x + y, 10), Eq(x - y, 2)], [x, y])\n"
        "answer = sol[x] * 10 + sol['y']\n"
    )
    result = pool.run(code)
    assert (result.status, result.answer, result.answer_float) == ("ok", "64", 64.0)


def test_solve_it_without_solution_maps_to_none(pool):
    result = pool.run("x = Symbol('x')\nanswer = solve_it(Eq(x, x + 1), x)[x]")
    assert (result.status, result.answer, result.answer_float) == ("ok", "None", None)


def test_prelude_names(pool):
    code = (
        "answer = lcm(4, 6) + gcd(12, 18) + floor(2.7) + ceil(2.1) + sqrt(16) + math.pi * 0"
        " + float(Decimal('0.5')) + statistics.mean([1, 2, 3])"
    )
    result = pool.run(code)
    assert (result.status, result.answer_float) == ("ok", 12 + 6 + 2 + 3 + 4 + 0.5 + 2)


def test_answer_types(pool):
    cases = {
        "answer = Rational(3, 4)": ("3/4", 0.75),
        "answer = 2.5": ("2.5", 2.5),
        "answer = '17'": ("17", None),
        "answer = True": ("True", None),
        "answer = [1, 2]": ("[1, 2]", None),
        "import numpy as np\nanswer = np.int64(5) * 2": ("10", 10.0),
        "answer = 'x' * 5000": ("x" * ANSWER_CHARS, None),
    }
    results = pool.run_many(list(cases))
    for (code, (text, number)), result in zip(cases.items(), results, strict=True):
        assert (result.status, result.answer, result.answer_float) == ("ok", text, number), code


def test_missing_answer_is_no_answer(pool):
    result = pool.run("total = 3 + 4\nprint(total)")
    assert (result.status, result.answer, result.error, result.stdout) == ("no_answer", None, None, "7\n")


def test_syntax_error(pool):
    result = pool.run("answer = (3 +")
    assert result.status == "error"
    assert result.error.startswith("SyntaxError") and "line 1" in result.error


def test_runtime_error_names_type_and_line(pool):
    result = pool.run("x = 1\ny = x / 0\nanswer = y")
    assert result.status == "error" and result.answer is None
    assert result.error == "ZeroDivisionError: division by zero (line 2)"


def test_markdown_fence_is_run_verbatim(pool):
    result = pool.run("```python\nanswer = 1\n```")
    assert result.status == "error" and "SyntaxError" in result.error


def test_program_may_write_in_its_own_fresh_directory(pool):
    first = pool.run("open('scratch.txt', 'w').write('kept')\nanswer = open('scratch.txt').read()")
    assert (first.status, first.answer) == ("ok", "kept")
    later = pool.run_many(["import os\nanswer = os.listdir('.')"] * 4)
    assert [r.answer for r in later] == ["[]"] * 4


def test_programs_do_not_share_state(pool):
    pool.run_many(["import decimal, math\ndecimal.getcontext().prec = 3\nmath.pi = 3\nanswer = 1"] * 4)
    results = pool.run_many(["answer = (math.pi, decimal.getcontext().prec)"] * 4)
    assert {r.answer for r in results} == {f"({__import__('math').pi}, 28)"}


def test_programs_naming_sympy_run_on_sympy_workers(pool):
    assert not needs_sympy("total = 3 * 4\nanswer = total - factorial(3)")
    assert needs_sympy("x = Symbol('x')") and needs_sympy("import sympy") and needs_sympy("answer = N(2)")
    plain, named = pool.run_many([
        "import sys\nanswer = 'sym' 'py' in sys.modules",  # the name spelled apart: not routed
        "import sys\nanswer = ('sympy' in sys.modules, Rational(1, 4) + Rational(1, 4))",
    ])
    assert (plain.status, plain.answer) == ("ok", "False")
    assert (named.status, named.answer) == ("ok", "(True, 1/2)")


def test_routing_looks_at_names_only():
    assert not needs_sympy("# solve for x, then simplify\nanswer = 3")
    assert not needs_sympy("print('Rational answer')\nanswer = 1")
    assert not needs_sympy("total = [1]\ntotal.expand = 2\nanswer = 1")
    assert needs_sympy("from sympy import Rational")
    assert needs_sympy("answer = (3 + Symbol")  # does not tokenize: the name is still found


def test_rerun_gets_only_what_is_left_of_the_time_limit(pool):
    code = "import time\ntime.sleep(0.6)\nmake = eval('Sym' + 'bol')\ntime.sleep(0.6)\nanswer = 1"
    started = time.monotonic()
    result = pool.run(code, timeout_s=1.0)
    assert (result.status, result.error) == ("timeout", "killed: timeout")
    assert 1.0 <= result.seconds and time.monotonic() - started < 3.0


def test_a_program_made_name_error_is_an_ordinary_error(pool):
    result = pool.run("raise NameError('made up', name=['Symbol'])")
    assert (result.status, result.error) == ("error", "NameError: made up (line 1)")


def test_a_kind_without_workers_fails_instead_of_waiting(monkeypatch):
    with SandboxPool(workers=1, timeout_s=5.0) as lonely:
        assert lonely.run("answer = 1").answer == "1"

        class CannotStart:
            def __init__(self, settings):
                raise OSError("cannot start a worker")

        monkeypatch.setattr(sandbox, "_Worker", CannotStart)
        os.kill(lonely.worker_pids("base")[0], signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(OSError, match="cannot start"):
            lonely.run("answer = 1")  # the dead worker's replacement fails
        with pytest.raises(SandboxError, match="no base sandbox worker is left"):
            lonely.run("answer = 1")
        assert lonely.run("answer = Rational(2)").answer == "2"  # the other kind still serves


def test_sympy_name_reached_without_spelling_it_is_rerun_on_a_sympy_worker(pool):
    result = pool.run("print('first line')\nmake = eval('Sym' + 'bol')\nanswer = make('t').name")
    assert (result.status, result.answer, result.stdout) == ("ok", "t", "first line\n")
    other = pool.run("answer = undefined_name + 1")
    assert (other.status, other.error) == ("error", "NameError: name 'undefined_name' is not defined (line 1)")


def test_forged_sympy_request_ends_as_an_error(pool):
    forged = "import os\nos.write(3, b'{\"status\": \"needs_sympy\"}')\nos._exit(0)"
    for code in (forged, forged + "\n# Symbol"):  # on a base worker, then on a sympy worker
        result = pool.run(code)
        assert result.status == "error" and "malformed result" in result.error


def test_without_prelude():
    with SandboxPool(workers=1, prelude=False) as bare:
        assert bare.run("answer = 2 ** 10").answer == "1024"
        result = bare.run("answer = Fraction(1, 2)")
        assert result.status == "error" and result.error.startswith("NameError")
        assert bare.run("answer = Symbol").error.startswith("NameError")
        assert len(bare.worker_pids()) == 1


def test_from_config():
    cfg = SandboxConfig(workers=1, timeout_s=2.5, cpu_s=3, memory_mb=512, max_output_bytes=2048)
    pool = SandboxPool.from_config(cfg)
    assert (pool.workers, pool.timeout_s, pool.cpu_s, pool.memory_mb, pool.max_output_bytes) == (1, 2.5, 3, 512, 2048)
    pool.close()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxPool(timeout_s=0)
    with pytest.raises(ValueError, match="workers"):
        SandboxPool(workers=0)


# ------------------------------------------------------------------------------------------------
# hostile programs
# ------------------------------------------------------------------------------------------------


def run_hostile(pool: SandboxPool, code: str, timeout_s: float = 5.0) -> ExecResult:
    started = time.monotonic()
    result = pool.run(code, timeout_s=timeout_s)
    assert time.monotonic() - started < timeout_s + 3, "the caller was held past the timeout"
    assert_no_program_processes(pool)
    assert_no_program_files(pool)
    assert_serves(pool)
    return result


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass",
        "import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass",
        "import time\ntime.sleep(1000)",
        "print('started')\nwhile True:\n    pass",
    ],
    ids=["busy-loop", "signals-ignored", "sleep", "output-then-loop"],
)
def test_loops_are_killed_at_the_timeout(hostile_pool, code):
    result = run_hostile(hostile_pool, code, timeout_s=1.0)
    assert (result.status, result.error, result.answer) == ("timeout", "killed: timeout", None)
    assert 0.9 < result.seconds < 3
    if "started" in code:
        assert result.stdout == "started\n"


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import os\nos.system(':(){ :|:& };:')",
        "import threading\nthreads = [threading.Thread(target=lambda: None) for _ in range(10)]\n"
        "[t.start() for t in threads]\nanswer = 1",
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()\nanswer = 1",
    ],
    ids=["fork-loop", "shell-fork-bomb", "threads", "multiprocessing"],
)
def test_fork_bombs_fail(hostile_pool, code):
    result = run_hostile(hostile_pool, code)
    assert result.status == "error" and result.answer is None


def test_memory_bombs(hostile_pool):
    huge = run_hostile(hostile_pool, "data = bytearray(64 * 1024 ** 3)\nanswer = 1")
    assert (huge.status, huge.error) == ("error", f"killed: memory (limit {hostile_pool.memory_mb} MB)")
    growing = run_hostile(hostile_pool, "chunks = []\nwhile True:\n    chunks.append(' ' * 10 ** 7)", timeout_s=20)
    assert growing.status == "error" and growing.error.startswith("killed: memory")


def test_huge_output_is_capped(hostile_pool):
    once = run_hostile(hostile_pool, "print('x' * 10_000_000)\nanswer = 1")
    assert (once.status, once.answer) == ("ok", "1")
    assert once.stdout.startswith("x" * 1000)
    assert len(once.stdout) < hostile_pool.max_output_bytes + 100 and "not kept" in once.stdout
    forever = run_hostile(hostile_pool, "import sys\nwhile True:\n    sys.stdout.write('y' * 4096)", timeout_s=1)
    assert forever.status == "timeout" and len(forever.stdout) < hostile_pool.max_output_bytes + 100


@pytest.mark.parametrize(
    "code",
    [
        "def f(n):\n    return f(n + 1)\nf(0)",
        "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nf(0)",
        "import sys\nsys.setrecursionlimit(10 ** 6)\nanswer = eval('(' * 100000 + ')' * 100000)",
    ],
    ids=["default-limit", "raised-limit", "deep-parser"],
)
def test_deep_recursion_is_an_error(hostile_pool, code):
    # a million frames take seconds to fill the memory limit, more on a core shared with a test worker
    result = run_hostile(hostile_pool, code, timeout_s=30)
    assert result.status == "error" and result.answer is None


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import sys\nsys.exit(0)", "SystemExit: 0 (line 2)"),
        ("raise SystemExit('bye')", "SystemExit: bye (line 1)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt (line 1)"),
        ("import os\nanswer = 1\nos._exit(0)", "exited with status 0 before finishing (os._exit?)"),
        ("import os\nos.abort()", "killed: signal 6"),
    ],
    ids=["sys.exit", "SystemExit", "KeyboardInterrupt", "os._exit", "abort"],
)
def test_exits_are_errors(hostile_pool, code, expected):
    result = run_hostile(hostile_pool, code)
    assert (result.status, result.error) == ("error", expected)


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import os\nos._exit = lambda code: None\nanswer = 5", ("ok", "5", None)),
        ("import json\njson.dumps = None\nanswer = 5", ("error", None, "exited with status 0 before finishing (os._exit?)")),
        ("import builtins\nbuiltins.isinstance = builtins.type = None\nraise ValueError('x')",
         ("error", None, "exited with status 0 before finishing (os._exit?)")),
        ("import os\nos.write(3, b'{\"status\": \"ok\", \"answer\": {\"forged\": 1}}')\nos._exit(0)",
         ("error", None, "sandbox: malformed result (the program wrote to the result channel)")),
        ("import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\nos.chmod('a/b', 0)\nos.chmod('a', 0)\nanswer = 1",
         ("ok", "1", None)),
    ],
    ids=["os._exit-replaced", "json-broken", "builtins-broken", "forged-report", "unremovable-files"],
)
def test_tampering_only_hurts_the_program(hostile_pool, code, expected):
    result = run_hostile(hostile_pool, code)
    assert (result.status, result.answer, result.error) == expected


def test_killing_the_parent_or_caller_fails(hostile_pool):
    code = (
        "import os, signal\nfailed = []\n"
        f"for pid in (os.getppid(), {os.getpid()}, 1, -1, 0):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        failed.append(pid)\n"
        "try:\n    os.killpg(os.getpgid(0), signal.SIGKILL)\nexcept OSError:\n    failed.append('pg')\n"
        "answer = len(failed)"
    )
    result = run_hostile(hostile_pool, code)
    assert (result.status, result.answer) == ("ok", "6")


def test_files_outside_the_directory_cannot_be_touched(hostile_pool, tmp_path):
    canary_dir = tmp_path / "outside"
    canary_dir.mkdir()
    canary = canary_dir / "canary.txt"
    canary.write_text("original")
    os.chmod(canary, 0o644)
    escape = Path("/tmp") / f"siked-sandbox-escape-{uuid.uuid4().hex}"
    attempts = {
        "write": f"open({str(canary)!r}, 'w').write('x')",
        "append": f"open({str(canary)!r}, 'a').write('x')",
        "os.open": f"os.write(os.open({str(canary)!r}, os.O_WRONLY | os.O_TRUNC), b'x')",
        "remove": f"os.remove({str(canary)!r})",
        "rename": f"os.rename({str(canary)!r}, {str(canary) + '.moved'!r})",
        "chmod": f"os.chmod({str(canary)!r}, 0)",
        "utime": f"os.utime({str(canary)!r}, (0, 0))",
        "truncate": f"os.truncate({str(canary)!r}, 0)",
        "rmtree": f"shutil.rmtree({str(canary_dir)!r})",
        "pathlib": f"pathlib.Path({str(canary)!r}).write_text('x')",
        "new-file": f"open({str(canary_dir / 'new.txt')!r}, 'w').write('x')",
        "tmp": f"open({str(escape)!r}, 'w').write('x')",
        "symlink": f"os.symlink({str(canary)!r}, 'link'); open('link', 'w').write('x')",
        "hardlink": f"os.link({str(canary)!r}, 'link2'); open('link2', 'w').write('x')",
        "dotdot": "open('../../../../../../' + " + repr(str(canary)) + ", 'w').write('x')",
        "chdir": f"os.chdir({str(canary_dir)!r}); open('canary.txt', 'w').write('x')",
        "sqlite": f"import sqlite3; sqlite3.connect({str(canary_dir / 'db.sqlite')!r}).execute('create table t (x)')",
        "sqlite-attach": "import sqlite3\nconnection = sqlite3.connect(':memory:')\n"
        f"connection.execute(\"attach database '{canary_dir / 'attached.db'}' as x\")\n"
        "connection.execute('create table x.t (a)')",
        "mkfifo": f"os.mkfifo({str(canary_dir / 'fifo')!r})",
        "mknod": f"os.mknod({str(canary_dir / 'node')!r})",
        "posix.mkfifo": f"import posix; posix.mkfifo({str(canary_dir / 'fifo2')!r})",
        "readline": f"import readline; readline.write_history_file({str(canary_dir / 'history')!r})",
        "shm": "import _posixshmem; _posixshmem.shm_open('/siked-sandbox-test', os.O_CREAT | os.O_RDWR, 0o600)",
        "shared_memory": "from multiprocessing import shared_memory; shared_memory.SharedMemory(create=True, size=8)",
        "inside": "open('mine.txt', 'w').write('x')",  # the one that must work
    }
    result = run_hostile(hostile_pool, attempts_program("import os, shutil, pathlib", attempts))
    assert (result.status, result.answer) == ("ok", "['inside']")
    assert not Path("/dev/shm/siked-sandbox-test").exists()
    assert canary.read_text() == "original"
    assert sorted(p.name for p in canary_dir.iterdir()) == ["canary.txt"]
    assert canary.stat().st_mode & 0o777 == 0o644
    assert not escape.exists()


def test_no_network(hostile_pool):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    code = (
        "succeeded = []\n"
        "try:\n    import socket\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    succeeded.append('socket')\n"
        "except Exception:\n    pass\n"
        "try:\n    import _socket\n    s = _socket.socket()\n"
        f"    s.connect(('127.0.0.1', {port}))\n    succeeded.append('_socket')\n"
        "except Exception:\n    pass\n"
        "try:\n    import urllib.request\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=1)\n    succeeded.append('urllib')\n"
        "except Exception:\n    pass\n"
        "answer = succeeded"
    )
    try:
        result = run_hostile(hostile_pool, code)
        assert (result.status, result.answer) == ("ok", "[]")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_no_subprocesses(hostile_pool, tmp_path):
    marker = tmp_path / "marker"
    sleeper = f"siked-sandbox-sleeper-{uuid.uuid4().hex}"
    attempts = {
        "system": f"os.system('touch {marker}')",
        "popen": f"os.popen('touch {marker}').read()",
        "subprocess": f"subprocess.run(['touch', {str(marker)!r}])",
        "spawn": f"os.spawnv(os.P_WAIT, '/usr/bin/touch', ['touch', {str(marker)!r}])",
        "posix_spawn": f"os.posix_spawn('/usr/bin/touch', ['touch', {str(marker)!r}], {{}})",
        "background": f"subprocess.Popen(['/bin/sh', '-c', 'sleep 1000 # {sleeper}'])",
        "fork-sleep": "pid = os.fork()\nif pid == 0:\n    time.sleep(1000)",
        "_posixsubprocess": "import _posixsubprocess",
        "ctypes": "import ctypes; ctypes.CDLL(None).fork()",
        "numpy-ctypes": "import numpy.core._internal as i; i.ctypes.CDLL(None)",
        "setrlimit": "import resource; resource.setrlimit(resource.RLIMIT_NPROC, (100, 100))",
        "exec": f"os.execv('/usr/bin/touch', ['touch', {str(marker)!r}])",
        "pid": "os.getpid()",  # the one that must work
    }
    result = run_hostile(hostile_pool, attempts_program("import os, subprocess, time", attempts))
    assert (result.status, result.answer) == ("ok", "['pid']")
    assert not marker.exists()
    assert processes_with(sleeper) == []


def test_environment_of_the_caller_is_not_visible(hostile_pool):
    code = (
        "import os, glob\nfound = []\n"
        f"if {SECRET_NAME!r} in os.environ:\n    found.append('environ')\n"
        f"for path in glob.glob('/proc/*/environ') + ['/proc/{os.getpid()}/environ']:\n"
        "    try:\n"
        f"        if {SECRET_NAME!r}.encode() in open(path, 'rb').read():\n"
        "            found.append(path)\n"
        "    except OSError:\n        pass\n"
        "answer = (sorted(os.environ), found)"
    )
    result = run_hostile(hostile_pool, code)
    assert result.status == "ok"
    assert result.answer.endswith(", [])")
    assert SECRET_NAME not in result.answer and SECRET_VALUE not in result.stdout


def test_a_dead_worker_is_replaced(hostile_pool):
    workers = len(hostile_pool.worker_pids())
    victim = hostile_pool.worker_pids(hostile_pool._route(""))[0]  # a worker of the kind programs go to
    server = children(victim)[0]
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in hostile_pool.worker_pids() and time.monotonic() < deadline:
        hostile_pool.run("answer = 1")
    assert victim not in hostile_pool.worker_pids()
    assert len(hostile_pool.worker_pids()) == workers
    assert_serves(hostile_pool)


def test_an_unresponsive_worker_is_replaced(hostile_pool, monkeypatch):
    monkeypatch.setattr(sandbox, "REPLY_GRACE_S", 0.5)
    for launcher in hostile_pool.worker_pids():  # freeze every server: whichever is picked hangs
        os.kill(children(launcher)[0], signal.SIGSTOP)
    frozen = set(hostile_pool.worker_pids())
    result = hostile_pool.run("answer = 1", timeout_s=0.5)
    assert (result.status, result.error) == ("timeout", "killed: timeout (worker unresponsive)")
    for launcher in frozen & set(hostile_pool.worker_pids()):
        os.kill(children(launcher)[0], signal.SIGCONT)
    assert len(frozen & set(hostile_pool.worker_pids())) == len(frozen) - 1
    assert_serves(hostile_pool)


def test_full_isolation_when_root(pool):
    if os.geteuid() != 0:
        pytest.skip("namespaces and the uid switch need root here")
    pool.run_many(["answer = 1", "answer = Rational(1)"])  # both kinds report their isolation
    isolation = pool.isolation
    for layer in ("pid_namespace", "net_namespace", "mount_namespace", "private_proc", "readonly_root",
                  "private_tmp", "unprivileged_uid"):
        assert isolation.get(layer), layer
    result = pool.run("answer = open('/proc/self/status').read().split('Uid:')[1].split()[:3]")
    assert result.answer == "['65534', '65534', '65534']"
    # what the kernel enforces, seen from inside: read-only root, writable private tmpfs as the
    # working directory, no network interface but loopback, no process but the server and itself
    code = (
        "import os\n"
        "mounts = {line.split()[4]: line.split()[5] for line in open('/proc/self/mountinfo')}\n"
        "interfaces = [line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]]\n"
        "processes = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "answer = (mounts['/'].split(',')[0], mounts[os.path.dirname(os.getcwd())].split(',')[0],\n"
        "          interfaces, processes[0], len(processes))"
    )
    result = pool.run(code)
    assert result.answer == "('ro', 'rw', ['lo'], 1, 2)"


# ------------------------------------------------------------------------------------------------
# concurrency and lifecycle
# ------------------------------------------------------------------------------------------------


def test_run_many_keeps_input_order(pool):
    codes, expected = [], []
    for i in range(200):
        if i % 11 == 0:
            codes.append(f"answer = {i} // 0")
            expected.append(("error", None))
        elif i % 7 == 0:
            codes.append(f"total = {i}")
            expected.append(("no_answer", None))
        elif i % 5 == 0:
            codes.append(f"x = Symbol('x')\nanswer = solve_it(Eq(2 * x, {2 * i}), x)[x]")
            expected.append(("ok", str(i)))
        else:
            codes.append(f"answer = Fraction({i * i}, 1)")
            expected.append(("ok", str(i * i)))
    ticks = []
    results = pool.run_many(codes, progress=ticks.append)
    assert [(r.status, r.answer) for r in results] == expected
    assert ticks == [1] * 200


def test_run_is_thread_safe(pool):
    results: dict[int, ExecResult] = {}

    def work(i: int) -> None:
        results[i] = pool.run(f"answer = {i} + 1000")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: r.answer for i, r in results.items()} == {i: str(i + 1000) for i in range(12)}


def test_close_leaves_no_process_behind():
    pool = SandboxPool(workers=2).start()
    assert pool.run("answer = 1").answer == "1"
    base_dir = pool._base_dir
    launchers = pool.worker_pids()
    deadline = time.monotonic() + 60  # the sympy workers may still be starting
    while len(tree := launchers + [p for pid in launchers for p in descendants(pid)]) < 8:
        assert time.monotonic() < deadline, tree
        time.sleep(0.1)
    assert len(tree) == 8  # four launchers (two base, two sympy), four servers
    outcome: list[BaseException | ExecResult] = []

    def run_forever() -> None:
        try:
            outcome.append(pool.run("while True: pass"))
        except SandboxError as exc:
            outcome.append(exc)

    busy = threading.Thread(target=run_forever)
    busy.start()
    time.sleep(0.3)
    pool.close()
    busy.join(10)
    assert not busy.is_alive() and isinstance(outcome[0], SandboxError)
    assert processes_with(base_dir) == []
    assert not Path(base_dir).exists()
    with pytest.raises(SandboxError, match="closed"):
        pool.run("answer = 1")
    pool.close()  # idempotent


CALLER = """
import sys, time
from siked.sandbox import SandboxPool
pool = SandboxPool(workers=2).start()
assert pool.run("answer = 1").answer == "1"
print(pool._base_dir, flush=True)
sys.stdin.readline()  # the test looks at the workers before this process goes away
if sys.argv[1] == "hang":
    pool.run("while True: pass", timeout_s=600)
"""


@pytest.mark.parametrize("how", ["exit-without-close", "sigkill-while-busy"])
def test_the_caller_going_away_leaves_no_process_behind(how):
    caller = subprocess.Popen([sys.executable, "-c", CALLER, "exit" if how.startswith("exit") else "hang"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_dir = caller.stdout.readline().strip()
        assert base_dir and processes_with(base_dir)
        caller.stdin.close()
        if how.startswith("sigkill"):
            time.sleep(0.3)
            caller.kill()
        caller.wait(30)
    finally:
        caller.kill()  # a failed assertion above must not leave the caller running
        caller.wait()
    deadline = time.monotonic() + 10
    while processes_with(base_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(base_dir) == []
    assert not Path(base_dir).exists()
