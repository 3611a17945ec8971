"""The worker process: ``python -m ftkit.worker RUN_DIR`` trains the run described by ``RUN_DIR/config.json``.

Started by the controller directly (one process) or under torchrun / the
deepspeed launcher (one per rank; they set RANK, LOCAL_RANK, WORLD_SIZE).
Every rank records itself in ``RUN_DIR/ranks/rank-N.json`` (pid, host, and
at the end its status; written through ``ftkit.records``), so the controller
can tell which rank failed and why. Stop, pause and save-now arrive as marker files in ``RUN_DIR/control/``.
Exit status: 0 finished or stopped, 1 failed, 2 bad command line.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from pathlib import Path

from . import shm
from .launch import tools_first
from .records import update_rank


def _init_distributed(config) -> None:
    """DeepSpeed's process group: gloo on CPU (its CPU accelerator), nccl on GPUs."""
    if config.distributed.zero_stage is None or "WORLD_SIZE" not in os.environ:
        return
    import deepspeed
    import torch

    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def main(argv=None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("--local_rank")]
    if len(args) != 1:
        print("usage: python -m ftkit.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    tools_first(os.environ)  # a rank started over ssh or by Slurm gets the PATH of that machine
    rank = int(os.environ.get("RANK", "0"))
    update_rank(run_dir, rank, rank=rank, local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                world_size=int(os.environ.get("WORLD_SIZE", "1")), pid=os.getpid(),
                host=socket.gethostname(), node=int(os.environ.get("GROUP_RANK", "0")), started=time.time(), status="running")
    try:
        from .config import RunConfig
        from .control import Control
        from .engine.train import train

        from . import models

        config = RunConfig.from_json(run_dir / "config.json")
        if models.is_builtin(config.model_name):
            # materialise before any process group exists: under one, saving writes on rank 0 only
            models.resolve(config.model_name)
        _init_distributed(config)
        summary = train(config, run_dir, control=Control(run_dir))
        status, reason = summary["status"], summary.get("reason")
    except BaseException as exc:  # startup failures: train() itself never raises
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    try:
        update_rank(run_dir, rank, status=status, reason=reason, ended=time.time())
    except OSError:  # a full disk: the run's own final event already says why
        pass
    if status == "failed":
        print(f"ftkit worker rank {rank} failed: {reason}", file=sys.stderr, flush=True)
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass
    shm.release(os.environ.get("MASTER_PORT"), rank)
    return 0 if status in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
