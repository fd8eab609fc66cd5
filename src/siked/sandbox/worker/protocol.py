"""What both sides of a worker share: length-prefixed JSON frames over pipes, and the limits a
reply is held to."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

ANSWER_CHARS = 1000
"""`ExecResult.answer` is cut to this many characters."""
ERROR_CHARS = 500
FILE_SIZE_LIMIT = 16 * 1024 * 1024
"""RLIMIT_FSIZE of a program: the largest file it may write in its directory."""
TMPFS_OPTIONS = b"size=64m,nr_inodes=4096,mode=0700"
OPEN_FILES_LIMIT = 64
UNPRIVILEGED_UID = 65534

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 30


def write_frame(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode("utf-8")
    view = memoryview(FRAME_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, size: int, deadline: float | None = None,
                poller: select.poll | None = None) -> bytes:
    """Read exactly `size` bytes; EOFError at end of stream, TimeoutError past the deadline
    (which needs a `poller` with `fd` registered; without a deadline reads block)."""
    chunks: list[bytes] = []
    while size:
        if poller is not None and deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not poller.poll(remaining * 1000):
                continue
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)

