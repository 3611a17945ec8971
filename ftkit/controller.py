"""The kernel-side controller: starts runs, relays their events, obeys Stop/Pause/Resume.

One ``Controller`` object owns all state (no module globals). A run trains
either in a background thread of the notebook kernel (one device) or in a
fresh worker process (``python -m ftkit.worker``, torchrun or the deepspeed
launcher; the kernel is never forked). Either way the run folder is the
durable record and events reach subscribers through one dispatcher thread,
in order, promptly; a subscriber that raises is ignored, never fatal.

A fresh ``Controller()`` (after a kernel restart) finds every run on disk: a
worker process still alive is reattached and tailed; a run whose process is
gone is closed as ``failed`` with its last known state, never dropped. A
Slurm job whose follower process is gone gets a new follower of the same
job (its id is in ``slurm.json``), so status, Stop and Slurm's end reason work.

Importing this module loads no torch, transformers, peft or DeepSpeed.
"""
from __future__ import annotations

import os
import queue as queue_mod
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from . import launch, records, supervise
from .events import FINAL_STATUSES, read_events
from .liveness import AWAY_REASON, QUEUED_REASON, alive, judge, owner_record
from .run import Run, _subscribe
from .runstate import ACTIVE, STATUSES, RunState
from .store import RunStore
from .supervise import close_run

__all__ = ["Controller", "Run", "STATUSES", "ACTIVE", "AWAY_REASON", "QUEUED_REASON"]
POLL_S = 0.1

RunCallback = Callable[[Run, dict], None]


class Controller:
    """Starts, queues, watches and steers runs; finds every run on disk.

    ``subscribe(callback)`` calls ``callback(run, event)`` for every event of
    every run; ``Run.subscribe(callback)`` calls ``callback(event)`` for one.
    """

    def __init__(self, runs_dir: Optional[str] = None, poll_s: float = POLL_S):
        self.store = RunStore(runs_dir)
        self.root = self.store.root
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._pending: list[Run] = []
        self._subscribers: list[RunCallback] = []
        self._queue: "queue_mod.Queue[tuple[Run, dict]]" = queue_mod.Queue()
        self._dispatcher: Optional[threading.Thread] = None
        self._cuda: Optional[bool] = None
        self._discover()

    # ---- finding runs -----------------------------------------------------------

    @property
    def runs(self) -> list["Run"]:
        """Every run: those on disk (oldest first) and the live ones."""
        self._discover()
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.id)

    def get(self, run_id: str) -> Run:
        self._discover()
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id]
        record = self.store.get(run_id)  # KeyError names what is missing
        return self._runs[record.id]

    def __getitem__(self, run_id: str) -> Run:
        return self.get(run_id)

    def _discover(self) -> None:
        for record in self.store.runs():
            with self._lock:
                if record.id in self._runs:
                    continue
                run = Run(self, record.path, status=record.status)
                self._runs[record.id] = run
            if run._status not in FINAL_STATUSES:
                self._adopt(run)

    def _adopt(self, run: Run) -> None:
        """A run found unfinished on disk: tail its live worker (for a run just created by a controller
        elsewhere, from the moment its owner record appears), or close it with its last known state."""
        verdict = judge(run.path)
        info = verdict.info
        if verdict.alive:
            run._events, offset = read_events(run.path / "events.jsonl")
            if info is None:  # its owner record follows; the tail picks it up
                info = {}
            else:
                run.mode = info.get("mode", "process")
                run._pid = info["pid"]
                status = RunState.fold(run._events).status
                run._status = "queued" if run.mode == "queued" else (
                    status if status in ACTIVE and status != "queued" else "running")
            proc = None
            if info.get("launcher") == "slurm" and not alive(info):  # Slurm runs the job; its follower is gone
                proc = supervise.spawn(run, self.cuda, attach=True)
                run._proc, run._pid = proc, proc.pid
            thread = threading.Thread(target=self._tail, args=(run, proc, offset), daemon=True,
                                      name=f"ftkit-tail-{run.id}")
            thread.start()
            run._thread = thread
            return
        close_run(run, "failed", verdict.reason, exit_code=None)
        self._dispatch(run, None)

    # ---- starting runs ------------------------------------------------------------

    def start(self, config) -> Run:
        """Check ``config``, create its run folder and start it (or queue it behind a clashing run)."""
        return self.queue([config], concurrent=1_000_000)[0]

    def queue(self, configs: Iterable, concurrent: int = 1) -> list[Run]:
        """Runs for several configs, started one after another (``concurrent`` at a time).

        Every config is checked before any folder is created, so one bad
        config leaves nothing behind. In-kernel (thread) runs never overlap,
        nor do runs that share a GPU.
        """
        if concurrent < 1:
            raise ValueError("concurrent must be >= 1")
        configs = [self._prepare(c) for c in configs]
        group = {"limit": concurrent, "active": set()}
        runs = []
        for config in configs:
            with self._lock:  # a folder is never seen by _discover before it is registered
                record = self.store.create(config)
                # the owner until a worker starts: a controller elsewhere sees it queued, not lost
                records.write_json(record.path / "worker.json", owner_record("queued", os.getpid()))
                run = Run(self, record.path, config=config, status="queued")
                run.group = group
                run._events = []
                run.mode = "thread" if config.launcher == "thread" else "process"
                self._runs[run.id] = run
                self._pending.append(run)
            runs.append(run)
        self._schedule()
        return runs

    def _prepare(self, config):
        """Preflight: raise ConfigError (naming the field) before anything is written."""
        from .preflight import preflight

        changes: dict[str, Any] = {}
        if str(Path(config.runs_dir or "").expanduser()) != str(self.root):
            changes["runs_dir"] = str(self.root.resolve())
        if config.resume_from:
            changes["resume_from"] = str(launch.resolve_checkpoint(config.resume_from, self.root))
        if changes:
            config = config.update(changes)
        preflight(config)
        if config.launcher != "thread":
            launch.check(config, self.cuda)
        return config

    @property
    def cuda(self) -> bool:
        if self._cuda is None:
            self._cuda = launch.has_cuda()
        return self._cuda

    def _schedule(self) -> None:
        with self._lock:
            # only this kernel's own: another process's in-kernel run (found on disk) never holds ours back
            busy_thread = any(r.mode == "thread" and r._status in ACTIVE and r._status != "queued"
                              and r._pid in (None, os.getpid()) for r in self._runs.values())
            busy_gpus: set[int] = set()
            for r in self._runs.values():
                if r._status in ACTIVE and r._status != "queued" and r.mode == "process":
                    busy_gpus |= _gpus(r.config, self.cuda)
            blocked_groups: set[int] = set()
            to_start = []
            for run in list(self._pending):
                group = run.group or {"limit": 1, "active": set()}
                if id(group) in blocked_groups:
                    continue
                needs_gpus = _gpus(run.config, self.cuda) if run.mode == "process" else set()
                if (len(group["active"]) >= group["limit"]
                        or (run.mode == "thread" and busy_thread)
                        or (needs_gpus & busy_gpus)):
                    blocked_groups.add(id(group))  # a group keeps its order
                    continue
                self._pending.remove(run)
                group["active"].add(run.id)
                run._status = "starting"
                if run.mode == "thread":
                    busy_thread = True
                busy_gpus |= needs_gpus
                to_start.append(run)
        for run in to_start:
            try:
                self._launch(run)
            except Exception as exc:  # e.g. the launcher cannot be executed
                close_run(run, "failed", f"could not start the worker: {type(exc).__name__}: {exc}", exit_code=None)
                self._finished(run)

    def _cancel_queued(self, run: Run) -> bool:
        with self._lock:
            if run not in self._pending:
                return False
            self._pending.remove(run)
        close_run(run, "stopped", "stopped before it started", None)
        self._schedule()
        return True

    def _launch(self, run: Run) -> None:
        if run.mode == "thread":
            records.write_json(run.path / "worker.json", owner_record("thread", os.getpid(), started=time.time()))
            run._pid = os.getpid()
            thread = threading.Thread(target=self._thread_main, args=(run,), daemon=True, name=f"ftkit-run-{run.id}")
            run._thread = thread
            thread.start()
            return
        proc = supervise.spawn(run, self.cuda)
        run._proc, run._pid = proc, proc.pid
        thread = threading.Thread(target=self._tail, args=(run, proc, 0), daemon=True, name=f"ftkit-tail-{run.id}")
        run._thread = thread
        thread.start()

    # ---- supervising the worker (ftkit.supervise) -----------------------------------

    def _thread_main(self, run: Run) -> None:
        supervise.thread_main(self, run)

    def _tail(self, run: Run, proc: Optional[subprocess.Popen], offset: int) -> None:
        supervise.tail(self, run, proc, offset)

    def _finished(self, run: Run) -> None:
        with self._lock:
            if run.group is not None:
                run.group["active"].discard(run.id)
        self._schedule()
        self._dispatch(run, None)  # marks the run done once every earlier event is delivered

    # ---- events to subscribers ------------------------------------------------------

    def subscribe(self, callback: RunCallback) -> Callable[[], None]:
        """``callback(run, event)`` for every new event of every run; returns an unsubscribe function."""
        return _subscribe(self._lock, self._subscribers, callback)

    def _dispatch(self, run: Run, event: Optional[dict]) -> None:
        with self._lock:
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(target=self._deliver, daemon=True, name="ftkit-events")
                self._dispatcher.start()
        self._queue.put((run, event))

    def _deliver(self) -> None:
        while True:
            run, event = self._queue.get()
            if event is None:
                run._done.set()
                continue
            with run._lock:
                own = list(run._subscribers)
            with self._lock:
                every = list(self._subscribers)
            for callback in own:
                try:
                    callback(event)
                except Exception:  # a broken view never breaks a run
                    pass
            for callback in every:
                try:
                    callback(run, event)
                except Exception:
                    pass

    # ---- convenience ------------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until no run is queued or active."""
        deadline = None if timeout is None else time.time() + timeout
        for run in list(self._runs.values()):
            left = None if deadline is None else max(0.0, deadline - time.time())
            run.wait(left)

    def __repr__(self) -> str:
        return f"<Controller {self.root} ({len(self._runs)} runs)>"


# ---- helpers (no state) ------------------------------------------------------------------


def _gpus(config, cuda: bool) -> set[int]:
    if not cuda:
        return set()
    d = config.distributed
    return set(d.gpus) if d.gpus else set(range(launch.processes(config)))
