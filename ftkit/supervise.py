"""Running a run's worker: an in-kernel thread or a subprocess, tailed until it ends.

``spawn`` starts the worker process (a fresh process, never a fork of the
kernel) and records it in ``worker.json``; ``tail`` relays new lines of
``events.jsonl`` to the run until the worker ends, and closes the record
when the worker could not (``ftkit.diagnose`` says why).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Optional

from . import launch, records, shm
from .diagnose import death_reason, failed_end_reason
from .events import read_events
from .liveness import QUEUED_REASON, judge, owner_info, owner_record
from .records import replace_last_line, write_json

if TYPE_CHECKING:  # the controller imports this module
    from .controller import Controller
    from .run import Run


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the worker leads its own session: this reaches every rank
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def close_run(run: "Run", status: str, reason: str, exit_code: Optional[int]) -> None:
    """Complete the record on disk (``records.close``) and end the run here, even if the disk refused."""
    event = records.close(run.path, status, reason, exit_code, run.log_tail(40), _config(run))
    run._record(event)


def spawn(run: "Run", cuda: bool, attach: bool = False) -> subprocess.Popen:
    """Start the worker process(es) of ``run``, output to ``logs/worker.log``.

    ``attach``: a Slurm run whose follower is gone gets a new follower of its recorded job, not a new job.
    """
    port = run.config.distributed.master_port or launch.free_port()
    argv, env = launch.command(run.config, run.path, python=sys.executable, cuda=cuda,
                               port=port, cpus=os.cpu_count(), base_env=os.environ)
    if attach:
        argv = [*argv, "--attach"]
    logs = run.path / "logs"
    logs.mkdir(exist_ok=True)
    if run.config.launcher == "deepspeed" and run.config.distributed.hostfile:
        # the launcher's pdsh reads it from its working folder (the run folder) for every machine
        (run.path / ".deepspeed_env").write_text(launch.deepspeed_env_file(env))
    with open(logs / "worker.log", "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(run.path), start_new_session=True, close_fds=True)
    write_json(run.path / "worker.json", owner_record(
        "process", proc.pid, argv=argv, started=time.time(), launcher=run.config.launcher, master_port=port))
    return proc


def thread_main(controller: "Controller", run: "Run") -> None:
    """Train ``run`` in this thread of the kernel; the record is always closed."""
    try:
        from .engine.train import train

        launch.tools_first(os.environ)
        train(run.config, run.path, emit=run._record, control=run._control)
    except BaseException as exc:  # train() reports its own failures; this is the last net
        if not run.done:
            close_run(run, "failed", f"{type(exc).__name__}: {exc}", exit_code=None)
    finally:
        if not run.done:  # ended without its final event: never leave it open
            close_run(run, "failed", "the training thread ended without a final event", exit_code=None)
        controller._finished(run)


def tail(controller: "Controller", run: "Run", proc: Optional[subprocess.Popen], offset: int) -> None:
    """Relay new lines of events.jsonl until the worker ends; close the run if it died silently."""
    path = run.path / "events.jsonl"
    info = owner_info(run.path) or {}
    exit_code = None
    failed_end: Optional[dict] = None  # held until the worker exits, to add its last words
    while True:
        if proc is not None:
            exit_code = proc.poll()
            gone = exit_code is not None
        else:  # a worker started elsewhere: its owner record may appear late, or hand over from queued
            info = owner_info(run.path) or info
            gone = not judge(run.path, info or None).alive
            if info and run._pid is None:
                run.mode, run._pid = info.get("mode"), info.get("pid")
            if info and info.get("mode") != "queued" and run._status == "queued":
                run.mode, run._pid = info.get("mode"), info.get("pid")
                run._set_status("starting")
        events, offset = read_events(path, offset)
        for event in events:
            if event.get("type") == "ended" and event.get("status") == "failed" and proc is not None:
                failed_end = event
                continue
            run._record(event)
        if run.done or failed_end is not None or gone:
            break
        time.sleep(controller.poll_s)
    if proc is not None:
        try:
            exit_code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # ended event written but the launcher lingers
            signal_group(proc.pid, signal.SIGTERM)
            exit_code = proc.wait()
        shm.release_ended(info.get("master_port"))  # ranks killed before they could release their own
    if failed_end is not None:
        amend_failed_end(run, failed_end, exit_code)
    if not run.done:
        if run._killed:
            close_run(run, "stopped", run._kill_reason, exit_code)
        elif run._status == "queued":
            close_run(run, "failed", QUEUED_REASON, exit_code)
        else:
            close_run(run, "failed", death_reason(run.path, _config(run), exit_code, attached=proc is not None), exit_code)
    controller._finished(run)


def _config(run: "Run"):
    try:
        return run.config
    except Exception:
        return None


def amend_failed_end(run: "Run", event: dict, exit_code: Optional[int]) -> None:
    """A worker's own ``failed`` event gets the log tail and, with several ranks, the rank that failed first."""
    reason = failed_end_reason(run.path, _config(run), event.get("reason"))
    event = dict(event, reason=reason, exit_code=exit_code, log_tail=run.log_tail(40))
    summary = dict(event.get("summary") or {}, reason=reason, exit_code=exit_code)
    event["summary"] = summary
    try:
        write_json(run.path / "summary.json", summary)
        replace_last_line(run.path / "events.jsonl", event)
    except OSError:  # a full disk: the worker's own final event and summary stand
        pass
    run._record(event)
