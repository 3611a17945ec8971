"""peft's BOFT can leave ``CC`` and ``CXX`` set to ``gcc`` in the process: they are put back.

BOFT builds its CUDA extension under its own ``patch_environment(CC="gcc",
CXX="gcc")``, whose restore runs only when the build succeeds. Without CUDA it
fails (quietly: peft falls back to a slower path) and the variables stay set for
the rest of the kernel, so every process started afterwards, DeepSpeed's JIT
build included, compiles with ``gcc``, and the op built with ``c++`` is rebuilt
(about 40 s each time the two alternate).
"""
from __future__ import annotations

import contextlib
import os

KEYS = ("CC", "CXX")


@contextlib.contextmanager
def compiler_env_kept():
    """Run the block, then put ``CC`` and ``CXX`` back as they were before it."""
    before = {key: os.environ.get(key) for key in KEYS}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
