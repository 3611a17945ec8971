"""The kernel-side controller: starts runs, relays their events, obeys Stop/Pause/Resume.

One ``Controller`` object owns all state (no module globals). A run trains
either in a background thread of the notebook kernel (one device) or in a
fresh worker process (``python -m ftkit.worker``, torchrun or the deepspeed
launcher; the kernel is never forked). Either way the run folder is the
durable record and events reach subscribers through one dispatcher thread,
in order, promptly; a subscriber that raises is ignored, never fatal.

A fresh ``Controller()`` (after a kernel restart) finds every run on disk: a
worker process still alive is reattached and tailed; a run whose process is
gone is closed as ``failed`` with its last known state, never dropped.

Importing this module loads no torch, transformers, peft or DeepSpeed.
"""
from __future__ import annotations

import json
import os
import queue as queue_mod
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import psutil

from . import launch
from .control import Control
from .events import FINAL_STATUSES, JsonlWriter, make_event, read_events
from .store import LOW_SPACE, RunRecord, RunStore, disk_full_reason, free_bytes

STATUSES = ("queued", "starting", "running", "paused", "stopping", "finished", "failed", "stopped")
ACTIVE = ("queued", "starting", "running", "paused", "stopping")
POLL_S = 0.1
AWAY_REASON = "worker exited while the controller was away"
QUEUED_REASON = "the controller exited before this queued run started"

EventCallback = Callable[[dict], None]
RunCallback = Callable[["Run", dict], None]


class Run:
    """One run: its folder, its status and events, and the buttons that steer it."""

    def __init__(self, controller: "Controller", path: Path, config=None, status: str = "queued"):
        self._controller = controller
        self.path = Path(path)
        self.id = self.path.name
        self._config = config
        self._lock = threading.RLock()
        self._events: Optional[list[dict]] = None  # loaded lazily for runs found on disk
        self._status = status
        self._done = threading.Event()
        self._subscribers: list[EventCallback] = []
        self._control = Control(self.path)
        self._proc: Optional[subprocess.Popen] = None
        self._pid: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._stop_requested = False
        self._killed = False
        self.mode: Optional[str] = None  # "thread" or "process" once started
        self.group: Optional[dict] = None
        if status in FINAL_STATUSES:
            self._done.set()

    # ---- what it is -----------------------------------------------------------

    @property
    def config(self):
        if self._config is None:
            self._config = RunRecord(self.path).config
        return self._config

    @property
    def status(self) -> str:
        return self._status

    @property
    def done(self) -> bool:
        return self._status in FINAL_STATUSES

    @property
    def events(self) -> list[dict]:
        """Every event so far, oldest first (a copy)."""
        with self._lock:
            if self._events is None:
                self._events = read_events(self.path / "events.jsonl")[0]
            return list(self._events)

    @property
    def summary(self) -> Optional[dict]:
        """The final summary (``summary.json``), once the run has ended."""
        return RunRecord(self.path).summary

    @property
    def record(self) -> RunRecord:
        return RunRecord(self.path)

    @property
    def pid(self) -> Optional[int]:
        return self._pid

    def checkpoints(self) -> list[Path]:
        return self.record.checkpoints()

    def steps(self) -> list[tuple[int, float]]:
        """(step, loss) of every step event so far."""
        return [(e["step"], e["loss"]) for e in self.events if e["type"] == "step" and e.get("loss") is not None]

    def predict(self, text: Any, **options: Any) -> Any:
        """The trained model's output for ``text`` (``ftkit.predict.Predictor``: loaded once, then cached)."""
        from .predict import Predictor

        return Predictor(self.path).predict(text, **options)

    def export(self, format: str, out: Any = None, **options: Any) -> Any:
        """Write this run's adapter, merged model or ONNX graph, checked (``ftkit.export.export``)."""
        from .export import export

        return export(self.path, format, out, **options)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self._status}>"

    # ---- the buttons ----------------------------------------------------------

    def stop(self) -> None:
        """End after the current step and save a checkpoint (a queued run just never starts)."""
        if self.done:
            return
        if self._controller._cancel_queued(self):
            return
        self._stop_requested = True
        self._control.request("stop")
        self._set_status("stopping")

    def pause(self) -> None:
        """Hold between steps until :meth:`resume` (or :meth:`stop`)."""
        if not self.done:
            self._control.request("pause")

    def resume(self) -> None:
        """Continue a paused run."""
        if not self.done:
            self._control.request("pause", False)

    def save_checkpoint(self) -> None:
        """Save a checkpoint after the current step, and carry on."""
        if not self.done:
            self._control.request("save")

    def kill(self) -> None:
        """End the worker process now (SIGTERM, then SIGKILL); the run ends as stopped."""
        if self.done or self._pid is None or self.mode != "process":
            return
        self._killed = True
        pid = self._pid
        _signal_group(pid, signal.SIGTERM)

        def finish() -> None:
            if not self.done and _alive(_read_json(self.path / "worker.json") or {}):
                _signal_group(pid, signal.SIGKILL)

        timer = threading.Timer(5.0, finish)
        timer.daemon = True
        timer.start()

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the run has ended (and subscribers have seen its last event); returns the status."""
        self._done.wait(timeout)
        return self._status

    # ---- watching -------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """``callback(event)`` for each new event of this run; returns a function that unsubscribes."""
        return _subscribe(self._lock, self._subscribers, callback)

    def log_tail(self, n: int = 40) -> list[str]:
        """The last ``n`` lines of the worker's output (in-kernel runs: of its log events)."""
        log = self.path / "logs" / "worker.log"
        if log.exists():
            return _tail_lines(log, n)
        lines: list[str] = []
        for event in self.events:
            if event["type"] == "log":
                lines.extend(str(event.get("message", "")).splitlines())
        return lines[-n:]

    # ---- internals ------------------------------------------------------------

    def _set_status(self, status: str) -> None:
        with self._lock:
            if self._status not in FINAL_STATUSES:
                self._status = status

    def _record(self, event: dict) -> None:
        """Take one new event: keep it, update the status, hand it to the dispatcher."""
        with self._lock:
            if self._events is None:
                self._events = read_events(self.path / "events.jsonl")[0]
            else:
                self._events.append(event)
            kind = event.get("type")
            if kind == "ended":
                self._status = event.get("status", "failed")
            elif self._status not in FINAL_STATUSES:
                if kind == "status" and event.get("status") in STATUSES:
                    status = event["status"]
                    if self._stop_requested and status in ("running", "paused"):
                        status = "stopping"
                    self._status = status
                elif kind in ("started", "step") and self._status in ("queued", "starting"):
                    self._status = "stopping" if self._stop_requested else "running"
        self._controller._dispatch(self, event)


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
        """A run found unfinished on disk: tail its live worker, or close it with its last known state."""
        info = _read_json(run.path / "worker.json")
        if info is None and time.time() - run.record.started < 30:
            return  # just created by a controller elsewhere: its owner record follows
        if info and _alive(info):
            run.mode = info.get("mode", "process")
            run._pid = info["pid"]
            run._status = "queued" if run.mode == "queued" else (_last_status(run) or "running")
            run._events, offset = read_events(run.path / "events.jsonl")
            thread = threading.Thread(target=self._tail, args=(run, None, offset), daemon=True,
                                      name=f"ftkit-tail-{run.id}")
            thread.start()
            run._thread = thread
            return
        if (info is None or info.get("mode") == "queued") and not (run.path / "events.jsonl").exists():
            reason = QUEUED_REASON
        else:
            reason = AWAY_REASON
        _close_failed(run, reason, exit_code=None)
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
                _write_json(record.path / "worker.json", {
                    "mode": "queued", "pid": os.getpid(), "create_time": _create_time(os.getpid())})
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
                _close_failed(run, f"could not start the worker: {type(exc).__name__}: {exc}", exit_code=None)
                self._finished(run)

    def _cancel_queued(self, run: Run) -> bool:
        with self._lock:
            if run not in self._pending:
                return False
            self._pending.remove(run)
        writer = JsonlWriter(run.path / "events.jsonl")
        summary = _light_summary(run, "stopped", "stopped before it started", [])
        _write_summary(run.path, summary)
        event = make_event("ended", status="stopped", reason="stopped before it started", summary=summary)
        writer(event)
        writer.close()
        run._record(event)
        self._schedule()
        return True

    def _launch(self, run: Run) -> None:
        if run.mode == "thread":
            _write_json(run.path / "worker.json", {
                "mode": "thread", "pid": os.getpid(), "create_time": _create_time(os.getpid()),
                "started": time.time()})
            run._pid = os.getpid()
            thread = threading.Thread(target=self._thread_main, args=(run,), daemon=True, name=f"ftkit-run-{run.id}")
            run._thread = thread
            thread.start()
            return
        argv, env = launch.command(run.config, run.path, python=sys.executable, cuda=self.cuda,
                                   port=launch.free_port(), cpus=os.cpu_count(), base_env=os.environ)
        logs = run.path / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / "worker.log", "ab") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=str(run.path), start_new_session=True, close_fds=True)
        run._proc, run._pid = proc, proc.pid
        _write_json(run.path / "worker.json", {
            "mode": "process", "pid": proc.pid, "create_time": _create_time(proc.pid),
            "argv": argv, "started": time.time(), "launcher": run.config.launcher})
        thread = threading.Thread(target=self._tail, args=(run, proc, 0), daemon=True, name=f"ftkit-tail-{run.id}")
        run._thread = thread
        thread.start()

    # ---- in-kernel runs -------------------------------------------------------------

    def _thread_main(self, run: Run) -> None:
        try:
            from .engine.train import train

            train(run.config, run.path, emit=run._record, control=run._control)
        except BaseException as exc:  # train() reports its own failures; this is the last net
            if not run.done:
                _close_failed(run, f"{type(exc).__name__}: {exc}", exit_code=None)
        finally:
            if not run.done:  # ended without its final event: never leave it open
                _close_failed(run, "the training thread ended without a final event", exit_code=None)
            self._finished(run)

    # ---- worker processes -----------------------------------------------------------

    def _tail(self, run: Run, proc: Optional[subprocess.Popen], offset: int) -> None:
        """Relay new lines of events.jsonl until the worker ends; close the run if it died silently."""
        path = run.path / "events.jsonl"
        info = _read_json(run.path / "worker.json") or {}
        exit_code = None
        failed_end: Optional[dict] = None  # held until the worker exits, to add its last words
        while True:
            if proc is not None:
                exit_code = proc.poll()
                gone = exit_code is not None
            else:  # a worker started elsewhere; its owner may hand over from queued to running
                info = _read_json(run.path / "worker.json") or info
                gone = not _alive(info)
                if info.get("mode") != "queued" and run._status == "queued":
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
            time.sleep(self.poll_s)
        if proc is not None:
            try:
                exit_code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # ended event written but the launcher lingers
                _signal_group(proc.pid, signal.SIGTERM)
                exit_code = proc.wait()
        if failed_end is not None:
            self._amend_failed_end(run, failed_end, exit_code)
        if not run.done:
            if run._killed:
                _close(run, "stopped", "killed on request", exit_code)
            elif run._status == "queued":
                _close_failed(run, QUEUED_REASON, exit_code)
            else:
                reason = _death_reason(run, exit_code, attached=proc is not None)
                _close_failed(run, reason, exit_code)
        self._finished(run)

    def _amend_failed_end(self, run: Run, event: dict, exit_code: Optional[int]) -> None:
        """A worker's own ``failed`` event gets the log tail and, with several ranks, the rank that failed first."""
        reason = event.get("reason") or "failed"
        if launch.world_size(run.config) > 1:
            cause = _launcher_root_cause(run.log_tail(200))
            causes = [cause] if cause else [c for c in _rank_failures(run.path) if not c.startswith("rank 0 ")]
            if causes:
                reason = "; ".join(causes) + f" (rank 0 then: {reason})"
                if any("SIGKILL" in c for c in causes):
                    reason += "; if nothing else killed it, the out-of-memory killer did: " + _first_memory_setting(run)
        event = dict(event, reason=reason, exit_code=exit_code, log_tail=run.log_tail(40))
        summary = dict(event.get("summary") or {}, reason=reason, exit_code=exit_code)
        event["summary"] = summary
        try:
            _write_summary(run.path, summary)
            _replace_last_line(run.path / "events.jsonl", event)
        except OSError:  # a full disk: the worker's own final event and summary stand
            pass
        run._record(event)

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


def _create_time(pid: int) -> Optional[float]:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(info: dict) -> bool:
    """The process ``worker.json`` names still runs (same pid, same start time, not a zombie)."""
    pid = info.get("pid")
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = info.get("create_time")
        return created is None or abs(proc.create_time() - created) < 1.0
    except psutil.Error:
        return False



def _subscribe(lock, subscribers: list, callback) -> Callable[[], None]:
    """Add ``callback`` to ``subscribers``; the returned function takes it out again."""
    with lock:
        subscribers.append(callback)

    def unsubscribe() -> None:
        with lock:
            if callback in subscribers:
                subscribers.remove(callback)

    return unsubscribe


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the worker leads its own session: this reaches every rank
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _write_summary(run_dir: Path, summary: dict) -> None:
    _write_json(Path(run_dir) / "summary.json", summary)


def _tail_lines(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip("\r") for line in deque(text.splitlines(), maxlen=n)]


def _last_status(run: Run) -> Optional[str]:
    status = None
    for event in read_events(run.path / "events.jsonl")[0]:
        if event["type"] == "status" and event.get("status") in STATUSES:
            status = event["status"]
        elif event["type"] in ("started", "step") and status in (None, "starting"):
            status = "running"
    return status


def _rank_failures(run_dir: Path) -> list[str]:
    out = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank-*.json"),
                       key=lambda p: int(p.stem.split("-")[-1]) if p.stem.split("-")[-1].isdigit() else 0):
        data = _read_json(path) or {}
        rank = data.get("rank", path.stem)
        if data.get("status") == "failed":
            out.append(f"rank {rank} failed: {data.get('reason')}")
        elif data.get("status") == "running" and data.get("pid") and not _pid_exists(data["pid"]):
            out.append(f"rank {rank} (pid {data['pid']}) died")
    return out


def _pid_exists(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _death_reason(run: Run, exit_code: Optional[int], attached: bool) -> str:
    """Why a worker ended without its final event, in words a user can act on."""
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
    lines = run.log_tail(200)
    try:
        several = launch.world_size(run.config) > 1
    except Exception:
        several = False
    if several:
        cause = _launcher_root_cause(lines)
        ranks = [cause] if cause else _rank_failures(run.path)
        text = "; ".join([text] + ranks)
    tail = "\n".join(lines[-60:]).lower()
    first = _first_memory_setting(run)
    free = free_bytes(run.path)
    if "no space left" in tail or (free is not None and free < LOW_SPACE):
        text += f" ({disk_full_reason(run.path)})"
    elif "out of memory" in tail or "memoryerror" in tail or "outofmemory" in tail:
        text += f" (out of memory: {first})"
    elif exit_code in (-9, 137) or "sigkill" in text.lower():
        text += f" (if nothing else killed it, the out-of-memory killer did: {first})"
    return text


def _first_memory_setting(run: Run) -> str:
    """The first setting to lower when a run runs out of memory."""
    try:
        t = run.config.training
    except Exception:
        return "lower training.batch_size"
    if t.batch_size > 1:
        return f"lower training.batch_size (now {t.batch_size}) and raise gradient_accumulation_steps"
    if not t.gradient_checkpointing:
        return "turn on training.gradient_checkpointing"
    return f"lower training.max_seq_length (now {t.max_seq_length}) or set quantization.bits=4"


def _launcher_root_cause(lines: list[str]) -> Optional[str]:
    """The rank torchrun names as the first failure ("Root Cause"), if its report is in the log."""
    text = "\n".join(lines)
    found = re.findall(r"rank\s*:\s*(\d+)\s*\(local_rank:[^)]*\)\s*\n\s*exitcode\s*:\s*(-?\d+)(?:\s*\(pid:\s*(\d+)\))?", text)
    if not found:
        return None
    rank, code, pid = found[-1]
    code = int(code)
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else (
        f"exited with code {code}")
    return f"rank {rank}{f' (pid {pid})' if pid else ''} {how}"


def _light_summary(run: Run, status: str, reason: Optional[str], events: list[dict], **extra) -> dict:
    """A summary from the events alone, for runs whose worker could not write its own."""
    steps = [e for e in events if e["type"] == "step"]
    evals = [e for e in events if e["type"] == "eval"]
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    started = next((e for e in events if e["type"] == "started"), {})
    try:
        config = run.config
        method, task, model, bits, zero = (config.method.name, config.task.name, config.model_name,
                                           config.bits, config.distributed.zero_stage)
    except Exception:
        method = task = model = bits = zero = None
    rss = [e.get("rss_mb", 0) for e in steps + evals]
    first_time = events[0]["time"] if events else None
    return {
        "run_id": run.id,
        "status": status,
        "reason": reason,
        "method": method,
        "task": task,
        "model": model,
        "bits": bits,
        "zero_stage": zero,
        "steps": max((e["step"] for e in steps + evals), default=0),
        "max_steps": started.get("max_steps", 0),
        "loss_first": steps[0].get("loss") if steps else None,
        "loss_last": steps[-1].get("loss") if steps else None,
        "metrics": evals[-1]["metrics"] if evals else {},
        "best": None,
        "trainable_params": started.get("trainable_params"),
        "total_params": started.get("total_params"),
        "wall_s": round(time.time() - first_time, 2) if first_time else None,
        "tokens_seen": steps[-1].get("tokens", 0) if steps else 0,
        "peak_rss_mb": max(rss) if rss else None,
        "rank_peak_rss_mb": steps[-1].get("rank_peak_rss_mb") if steps else None,
        "checkpoint": checkpoints[-1]["path"] if checkpoints else None,
        "final_dir": None,
        **extra,
    }


def _close(run: Run, status: str, reason: str, exit_code: Optional[int]) -> None:
    """Append the missing ``ended`` event and write ``summary.json``, so the record is complete.

    On a full disk the run still ends (in memory, with its reason); a later
    controller closes the record on disk once there is room.
    """
    events = read_events(run.path / "events.jsonl")[0]
    tail = run.log_tail(40)
    summary = _light_summary(run, status, reason, events, exit_code=exit_code)
    event = make_event("ended", status=status, reason=reason, exit_code=exit_code, log_tail=tail, summary=summary)
    try:
        _write_summary(run.path, summary)
        writer = JsonlWriter(run.path / "events.jsonl")
        try:
            _terminate_partial_line(run.path / "events.jsonl")
            writer(event)
        finally:
            writer.close()
    except OSError:
        pass
    run._record(event)


def _close_failed(run: Run, reason: str, exit_code: Optional[int]) -> None:
    _close(run, "failed", reason, exit_code)


def _terminate_partial_line(path: Path) -> None:
    """A line cut short by a killed writer gets its newline, so the next event starts clean."""
    try:
        with open(path, "rb+") as f:
            f.seek(0, 2)
            if f.tell() == 0:
                return
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except OSError:
        pass


def _replace_last_line(path: Path, event: dict) -> None:
    """Rewrite the file's last (complete) line with ``event``; every earlier line stays as written.

    Written over the old line in place: if the disk has no room for the longer
    line, the old one is put back, so the final event is never lost.
    """
    line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
    with open(path, "rb+", buffering=0) as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4 * 1024 * 1024))
        base = f.tell()
        data = f.readall()
        body = data[:-1] if data.endswith(b"\n") else data
        start = base + body.rfind(b"\n") + 1
        try:
            f.seek(start)
            _write_all(f, line)
            f.truncate()
            os.fsync(f.fileno())
        except OSError:
            f.seek(start)
            _write_all(f, data[start - base:])
            f.truncate()
            raise


def _write_all(f, data: bytes) -> None:
    """Unbuffered writes may be short (a disk filling up): write until all is out or it raises."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]
