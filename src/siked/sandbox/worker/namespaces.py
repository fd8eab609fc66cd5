"""Linux primitives the os module lacks (ctypes), the namespaces a worker enters, its private
mounts, and killing what a program left behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from .protocol import TMPFS_OPTIONS

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_KEEPCAPS, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 8, 36, 38
CAP_SETUID = 7
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and arm64
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD, AT_RECURSIVE = -100, 0x8000


class Native:
    """The few libc calls Python's os module lacks. Only the worker creates one; a program's
    process drops every reference before running untrusted code."""

    def __init__(self) -> None:
        import ctypes as c

        class CapHeader(c.Structure):
            _fields_ = [("version", c.c_uint32), ("pid", c.c_int)]

        class CapData(c.Structure):
            _fields_ = [("effective", c.c_uint32), ("permitted", c.c_uint32),
                        ("inheritable", c.c_uint32)]

        self.ctypes = c
        self.libc = c.CDLL(None, use_errno=True)
        self._python_libc = c.PyDLL(None, use_errno=True)  # keeps the GIL held across fork()
        self._cap_header = CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        self._cap_data = {0: (CapData * 2)(), 1 << CAP_SETUID: (CapData * 2)()}
        for mask, data in self._cap_data.items():
            data[0].effective = data[0].permitted = mask

    def _call(self, what: str, result: int) -> None:
        if result != 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def unshare(self, flags: int) -> None:
        self._call("unshare", self.libc.unshare(flags))

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: bytes | None = None) -> None:
        result = self.libc.mount(_c_string(source), target.encode(), _c_string(fstype),
                                 self.ctypes.c_ulong(flags), data)
        self._call(f"mount {target}", result)

    def make_readonly_recursive(self, path: str) -> None:
        c = self.ctypes

        class MountAttr(c.Structure):
            _fields_ = [("attr_set", c.c_uint64), ("attr_clr", c.c_uint64),
                        ("propagation", c.c_uint64), ("userns_fd", c.c_uint64)]

        attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        result = self.libc.syscall(c.c_long(SYS_MOUNT_SETATTR), c.c_long(AT_FDCWD),
                                   c.c_char_p(path.encode()), c.c_long(AT_RECURSIVE),
                                   c.byref(attr), c.c_long(c.sizeof(attr)))
        self._call("mount_setattr", result)

    def prctl(self, option: int, value: int) -> None:
        self._call("prctl", self.libc.prctl(option, value, 0, 0, 0))

    def set_capabilities(self, mask: int) -> None:
        """Set effective = permitted = `mask` (0 or 1 << CAP_SETUID), inheritable = 0."""
        header = self.ctypes.byref(self._cap_header)
        self._call("capset", self.libc.capset(header, self._cap_data[mask]))

    def fork(self) -> int:
        """fork() without Python's at-fork machinery.

        os.fork() runs the interpreter's before/after-fork handlers, which in a process that has
        imported sympy touch (copy) a few hundred pages: 1-2 ms per program. The server is
        single-threaded and holds the GIL through this call (PyDLL), so the child's interpreter
        state is consistent without them; the one handler that matters (reseeding `random`)
        runs in the child explicitly.
        """
        pid = self._python_libc.fork()
        if pid < 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"fork: {os.strerror(errno)}")
        return pid

    def setfsuid(self, uid: int) -> None:
        self.libc.setfsuid(uid)  # returns the previous fsuid, never an error code


def _c_string(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def enter_namespaces(native: Native, wanted: bool) -> dict[str, Any]:
    """Launcher: new PID and network namespaces for the server it forks next (user ns if needed)."""
    if not wanted or not sys.platform.startswith("linux"):
        return {}
    try:
        native.unshare(CLONE_NEWPID | CLONE_NEWNET)
        return {"pid_namespace": True, "net_namespace": True}
    except OSError:
        pass
    if os.geteuid() == 0:
        return {}
    uid, gid = os.getuid(), os.getgid()
    try:
        native.unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
    except OSError:
        return {}
    try:  # map ourselves to root inside, so mounts and file ownership work
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as exc:
        print(f"siked sandbox: cannot map uid {uid} in the user namespace: {exc}", file=sys.stderr)
    return {"pid_namespace": True, "net_namespace": True, "user_namespace": True}


def private_mounts(native: Native, root: str, isolation: dict[str, Any]) -> None:
    """Server: own mount namespace, private /proc, read-only everything, tmpfs for programs."""
    try:
        native.unshare(CLONE_NEWNS)
        native.mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    except OSError:
        return
    isolation["mount_namespace"] = True
    for key, step in (
        ("private_proc", lambda: native.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)),
        ("readonly_root", lambda: native.make_readonly_recursive("/")),
        ("private_tmp", lambda: native.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                             TMPFS_OPTIONS)),
    ):
        try:
            step()
            isolation[key] = True
        except OSError as exc:
            isolation[key] = False
            print(f"siked sandbox: {key} unavailable: {exc}", file=sys.stderr)


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
        return found
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without the children file: scan stat
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def kill_all_children(as_namespace_init: bool, patience_s: float = 5.0) -> None:
    """SIGKILL and reap every remaining child; orphans of children reparent to us (we are PID 1
    of the namespace or a subreaper), so when no child is left no descendant is left."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if as_namespace_init and os.getpid() == 1:
            kill(-1)  # PID 1 of a namespace: everyone else in it
        else:
            for child in _children_of(os.getpid()):
                kill(child)
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

