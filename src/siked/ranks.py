"""Which process of a distributed launch this is, read from the launcher's environment (no torch)."""

from __future__ import annotations

import os

RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMI_RANK")
"""Where `accelerate launch`, torchrun and the MPI launchers put a process's global rank (the ones
accelerate reads, in its order)."""


def is_main_process() -> bool:
    """False in the other processes of a distributed run: they neither write nor print."""
    for name in RANK_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name]) == 0
    return True
