"""The shared memory DeepSpeed's CPU all-reduce leaves behind, removed when a run's ranks end.

On its CPU accelerator, with every rank on one machine, DeepSpeed's shm
all-reduce (``deepspeed/ops/csrc/cpu/comm/shm.cpp``) maps one 66 MB segment per
rank, ``deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>``,
and never unlinks it: without this, every two-rank CPU run would keep 132 MB
of ``/dev/shm`` (that is, of RAM) until the machine restarts.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

SHM = Path("/dev/shm")
PREFIX = "deepspeed_allreduce_buffer"


def release(port, rank: Optional[int] = None, *, older_than: Optional[float] = None) -> list[str]:
    """Unlink this user's segments of the run on ``port``: one ``rank``'s, or every rank's.

    A rank releases its own as it ends (the others have mapped it long before);
    the run's owner releases every rank's once the ranks are gone, even killed
    ones, but only segments last written before ``older_than`` (when they
    ended), never those of a new run that took the port since. Returns the
    names removed.
    """
    if not port:
        return []
    removed = []
    for path in SHM.glob(f"{PREFIX}_{os.getuid()}_*_{port}_{'*' if rank is None else rank}"):
        try:
            if older_than is None or path.stat().st_mtime <= older_than:
                path.unlink()
                removed.append(path.name)
        except OSError:  # gone already, or not ours to remove
            pass
    return removed


def release_ended(port) -> list[str]:
    """Every rank's segments of an ended run on ``port`` (see ``release``)."""
    return release(port, older_than=time.time())
