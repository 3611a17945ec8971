"""Why a run died, in words a user can act on: from the exit code, the worker's log and the rank files.

Also the one home of the out-of-memory advice (the first setting to lower),
used by the engine for an error it caught and here for a worker that died.
"""
from __future__ import annotations

import re
import signal
from typing import Any, Optional

from .liveness import AWAY_REASON, process_alive
from .records import read_ranks
from .store import LOW_SPACE, disk_full_reason, free_bytes, log_tail


def first_memory_setting(config: Any) -> str:
    """The first setting to lower when a run of ``config`` runs out of memory."""
    try:
        t = config.training
    except Exception:
        return "lower training.batch_size"
    if t.batch_size > 1:
        return f"lower training.batch_size (now {t.batch_size}) and raise gradient_accumulation_steps"
    if not t.gradient_checkpointing:
        return "turn on training.gradient_checkpointing"
    return f"lower training.max_seq_length (now {t.max_seq_length}) or set quantization.bits=4"


def _dead_ranks(run_dir) -> list[dict]:
    """Ranks whose process is gone without recording an end (killed, or died in C code)."""
    return [data for data in read_ranks(run_dir)
            if data.get("status") == "running" and data.get("pid") and not process_alive(data["pid"])]


def rank_failures(run_dir) -> list[str]:
    out = [f"rank {data.get('rank')} failed: {data.get('reason')}" for data in read_ranks(run_dir)
           if data.get("status") == "failed"]
    return out + [f"rank {data.get('rank')} (pid {data['pid']}) died" for data in _dead_ranks(run_dir)]


def _ended(code: int) -> str:
    return (f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
            else f"exited with code {code}")


def launcher_root_cause(lines: list[str], run_dir=None) -> Optional[str]:
    """The rank that failed first, as the launcher's log tells it.

    torchrun names it ("Root Cause": rank, exit code, pid). DeepSpeed's launcher
    logs only the exit code it saw first; a signal there can only be that of a
    rank that died without recording its end, so it is named when just one did.
    """
    text = "\n".join(lines)
    found = re.findall(r"rank\s*:\s*(\d+)\s*\(local_rank:[^)]*\)\s*\n\s*exitcode\s*:\s*(-?\d+)(?:\s*\(pid:\s*(\d+)\))?", text)
    if found:
        rank, code, pid = found[-1]
        return f"rank {rank}{f' (pid {pid})' if pid else ''} {_ended(int(code))}"
    codes = re.findall(r"exits with return code = (-\d+)", text)
    dead = _dead_ranks(run_dir) if codes and run_dir is not None else []
    if len(dead) == 1:
        return f"rank {dead[0].get('rank')} (pid {dead[0]['pid']}) {_ended(int(codes[-1]))}"
    return None


def _several_ranks(config: Any) -> bool:
    from . import launch

    try:
        return launch.world_size(config) > 1
    except Exception:
        return False


def death_reason(run_dir, config: Any, exit_code: Optional[int], attached: bool) -> str:
    """Why a worker ended without its final event."""
    if not attached:
        return AWAY_REASON
    if exit_code is not None and exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        text = f"worker killed by {name}"
    else:
        text = f"worker exited with code {exit_code} before its final event"
    lines = log_tail(run_dir, 200)
    try:
        from .launch import rendezvous_timeout_reason

        from .launch import unreachable_host_reason

        waited = rendezvous_timeout_reason(config, run_dir, lines) or unreachable_host_reason(config, lines)
    except Exception:
        waited = None
    if waited:
        return waited
    if _several_ranks(config):
        cause = launcher_root_cause(lines, run_dir)
        ranks = [cause] if cause else rank_failures(run_dir)
        text = "; ".join([text] + ranks)
    tail = "\n".join(lines[-60:]).lower()
    first = first_memory_setting(config)
    free = free_bytes(run_dir)
    if "no space left" in tail or (free is not None and free < LOW_SPACE):
        text += f" ({disk_full_reason(run_dir)})"
    elif "out of memory" in tail or "memoryerror" in tail or "outofmemory" in tail:
        text += f" (out of memory: {first})"
    elif exit_code in (-9, 137) or "sigkill" in text.lower():
        text += f" (if nothing else killed it, the out-of-memory killer did: {first})"
    return text


def failed_end_reason(run_dir, config: Any, reason: Optional[str]) -> str:
    """A worker's own ``failed`` reason, with the rank that failed first when there were several."""
    reason = reason or "failed"
    if reason.startswith("Slurm ended job"):  # the scheduler ended every rank: its word is the reason
        return reason
    if _several_ranks(config):
        cause = launcher_root_cause(log_tail(run_dir, 200), run_dir)
        causes = [cause] if cause else [c for c in rank_failures(run_dir) if not c.startswith("rank 0 ")]
        if causes:
            reason = "; ".join(causes) + f" (rank 0 then: {reason})"
            if any("SIGKILL" in c for c in causes):
                reason += "; if nothing else killed it, the out-of-memory killer did: " + first_memory_setting(config)
    return reason
