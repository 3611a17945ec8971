"""Whether a run's process is alive: judged here only, for the controller, the CLI and the server extension.

A run's owner is named in ``RUN_DIR/worker.json``: ``mode`` (queued, thread,
process), ``pid`` and that process's ``create_time`` (so a recycled pid never
passes for the worker), and for a worker subprocess its ``owner_pid`` (the
controller tailing it, which closes the run itself when the worker ends).
A Slurm run whose follower process is gone lives as long as Slurm runs its job.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import psutil

#: a run folder younger than this without ``worker.json`` is still being set up by its controller
YOUNG_S = 30.0
AWAY_REASON = "worker exited while the controller was away"
QUEUED_REASON = "the controller exited before this queued run started"


@dataclass(frozen=True)
class Verdict:
    """``alive``: something is (or will be) writing the run's record; else ``reason`` says why it is dead."""

    alive: bool
    reason: Optional[str] = None
    info: Optional[dict] = None


def create_time(pid: int) -> Optional[float]:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: Optional[int], created: Optional[float] = None) -> bool:
    """Process ``pid`` runs (not a zombie) and, if ``created`` is given, is the one started then."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < 1.0
    except psutil.Error:
        return False


def alive(info: dict) -> bool:
    """The process a ``worker.json`` names still runs (same pid, same start time, not a zombie)."""
    return process_alive(info.get("pid"), info.get("create_time"))


def owner_info(run_dir) -> Optional[dict]:
    try:
        data = json.loads((Path(run_dir) / "worker.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def owner_record(mode: str, pid: int, **extra) -> dict:
    """What ``worker.json`` says about a run's process; a worker subprocess also names its controller."""
    data = {"mode": mode, "pid": pid, "create_time": create_time(pid), **extra}
    if mode == "process":
        data.update(owner_pid=os.getpid(), owner_create_time=create_time(os.getpid()))
    return data


def slurm_job_alive(run_dir) -> bool:
    """Slurm still holds the job recorded in ``RUN_DIR/slurm.json`` unfinished (``ftkit.slurm``)."""
    from .slurm import active_job

    return active_job(run_dir) is not None


def judge(run_dir, info: Optional[dict] = None) -> Verdict:
    """Is anything still writing the unfinished run in ``run_dir``? If not, why it ended unrecorded."""
    run_dir = Path(run_dir)
    info = owner_info(run_dir) if info is None else info
    if info is None:
        config = run_dir / "config.json"
        try:
            age = time.time() - (config if config.exists() else run_dir).stat().st_mtime
        except OSError:
            age = 0.0
        if age < YOUNG_S:
            return Verdict(True)  # just created by a controller elsewhere: its owner record follows
    elif alive(info):
        return Verdict(True, info=info)
    elif info.get("mode") == "process" and info.get("owner_pid") not in (None, os.getpid()) \
            and process_alive(info["owner_pid"], info.get("owner_create_time")):
        return Verdict(True, info=info)  # its controller saw the worker end and closes the run itself
    elif info.get("launcher") == "slurm" and slurm_job_alive(run_dir):
        return Verdict(True, info=info)  # its follower is gone, but Slurm still runs the job
    if (info is None or info.get("mode") == "queued") and not (run_dir / "events.jsonl").exists():
        return Verdict(False, QUEUED_REASON, info)
    return Verdict(False, AWAY_REASON, info)
