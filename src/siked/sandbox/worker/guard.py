"""The audit guard (defence in depth only): refuse process creation, network, native calls,
writes outside the program's directory and reads of other processes' /proc entries."""

from __future__ import annotations

import os
import subprocess  # noqa: F401  loaded in every worker: programs may import it, never spawn with it
import sys
from typing import Any


def forget_unaudited_functions() -> None:
    """Remove what raises no audit event but spawns processes or creates files: native-call
    modules become unreachable by name (the audit hook refuses re-importing them), and
    os.mkfifo / os.mknod disappear."""
    for name in _DENIED_IMPORTS:
        sys.modules.pop(name, None)
    subprocess_module = sys.modules.get("subprocess")
    if subprocess_module is not None:
        subprocess_module._posixsubprocess = None  # type: ignore[attr-defined]
    for module in (os, sys.modules.get("posix")):
        for name in ("mkfifo", "mknod"):
            if module is not None and hasattr(module, name):
                delattr(module, name)


_DENIED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "os.symlink", "os.link", "os.startfile", "subprocess.Popen", "pty.spawn",
    "resource.setrlimit", "resource.prlimit", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "fcntl.ioctl", "webbrowser.open", "sqlite3.connect",
})
_DENIED_PREFIXES = ("socket.", "ctypes.", "syslog.", "http.client.", "urllib.", "ftplib.",
                    "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.")
_DENIED_IMPORTS = frozenset({  # C modules that act without audit events
    "_posixsubprocess", "ctypes", "_ctypes", "_xxsubinterpreters", "_testcapi", "_testinternalcapi",
    "_posixshmem", "readline", "_sqlite3", "_dbm", "_gdbm",
})
_PATH_EVENTS = {  # event -> positions of path arguments that must stay inside the directory
    "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
    "os.chflags": (0,), "os.lchflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "os.chdir": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.copymode": (1,),
    "shutil.copystat": (1,), "shutil.copytree": (1,), "shutil.move": (1,),
}


def install_guard(workdir: str) -> None:
    """Audit hook of the program process (defence in depth; the real limits are set already)."""
    workdir = os.path.normpath(workdir)
    try:
        own_proc_entry = os.readlink("/proc/self")
    except OSError:
        own_proc_entry = str(os.getpid())
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def resolve(path: Any) -> str | None:
        if isinstance(path, int):
            try:
                return os.readlink(f"/proc/self/fd/{path}")
            except OSError:
                return None
        try:
            return os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path)))
        except (TypeError, ValueError, OSError):
            return None

    def inside(path: Any) -> bool:
        full = resolve(path)
        return full is not None and (full == workdir or full.startswith(workdir + os.sep))

    def other_process_entry(path: Any) -> bool:
        full = resolve(path) if not isinstance(path, int) else None
        if full is None or not full.startswith("/proc/"):
            return False
        entry = full.split("/")[2]
        return entry.isdigit() and entry != own_proc_entry

    def deny(event: str) -> None:
        raise PermissionError(f"sandbox: {event} is not allowed")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in _DENIED_EVENTS or event.startswith(_DENIED_PREFIXES):
            deny(event)
        elif event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = mode is None or bool((flags or 0) & write_flags)  # os.open: always checked
            if (writing and not inside(path)) or other_process_entry(path):
                deny(f"open({path!r})")
        elif event in _PATH_EVENTS:
            for position in _PATH_EVENTS[event]:
                if position < len(args) and args[position] is not None and not inside(args[position]):
                    deny(f"{event}({args[position]!r})")
        elif event == "import" and args and args[0] in _DENIED_IMPORTS:
            # ImportError, not PermissionError: libraries guard optional imports (numpy: ctypes)
            raise ImportError(f"sandbox: import {args[0]} is not allowed")

    sys.addaudithook(hook)

