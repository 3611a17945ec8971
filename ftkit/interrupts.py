"""Ctrl-C, SIGTERM and SIGHUP during ``ftkit train``: a clean stop, or a clean abandon, never a lost run."""
from __future__ import annotations

import sys
from typing import Optional


#: signals ``ftkit train`` turns into a clean end of its run
_INTERRUPTS = ("SIGINT", "SIGTERM", "SIGHUP")


def watch(run) -> Optional[int]:
    """Wait for ``run``; Ctrl-C once stops it after this step, again (or SIGTERM, SIGHUP) abandons it.

    Returns None once the run has ended, or the exit status after an abandon.
    """
    import signal

    got: list[int] = []
    handlers = {}
    for name in _INTERRUPTS:
        try:
            handlers[name] = signal.signal(getattr(signal, name), lambda signum, frame: got.append(signum))
        except (AttributeError, ValueError):  # not on this platform, or not the main thread
            pass
    try:
        seen, stopping = 0, False
        while not run.done:
            run.wait(0.2)
            while seen < len(got):
                signum = got[seen]
                seen += 1
                if signum == signal.SIGINT and not stopping:
                    print("\nstopping after this step (Ctrl-C again to abandon)...", flush=True)
                    run.stop()
                    stopping = True
                    continue
                why = "a second Ctrl-C" if signum == signal.SIGINT else f"{signal.Signals(signum).name}"
                return abandon(run, why, 128 + signum)
        return None
    finally:
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)


def abandon(run, why: str, code: int) -> int:
    """End ``run`` now as ``stopped``: its worker killed, or (in this process) its record closed."""
    from .supervise import close_run

    print(f"\nabandoning run {run.id} ({why})", file=sys.stderr, flush=True)
    run.hold()  # trained by this process, which exits next: no save is cut short (a process run is killed)
    found = run.checkpoints()
    step = run.state().step
    keep = f"; its last complete checkpoint {found[-1]} is kept (resume_from={run.id} continues from it)" \
        if found else "; it saved no checkpoint"
    reason = f"abandoned on {why} at step {step}{keep}"
    if run.mode == "process":
        run.kill(reason)
        run.wait(30)
    if not run.done:
        close_run(run, "stopped", reason, None)
    from .printer import summary_text

    print(summary_text(run.summary or {"run_id": run.id, "status": "stopped", "reason": reason}), flush=True)
    return code
