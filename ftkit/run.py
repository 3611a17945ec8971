"""``Run``: the handle of one run: its folder, status and events, and the buttons that steer it.

Made and fed by a ``Controller`` (``ftkit.controller``), which owns the
queue and the dispatcher; a run's events are folded into its ``RunState``
as they arrive. Importing this module loads no torch.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import supervise
from .control import Control
from .events import FINAL_STATUSES, read_events
from .liveness import alive, owner_info
from .runstate import STATUSES, RunState, for_config
from .store import RunRecord, log_tail

if TYPE_CHECKING:  # the controller imports this module
    from .controller import Controller

EventCallback = Callable[[dict], None]


class Run:
    """One run: its folder, its status and events, and the buttons that steer it."""

    def __init__(self, controller: "Controller", path: Path, config=None, status: str = "queued"):
        self._controller = controller
        self.path = Path(path)
        self.id = self.path.name
        self._config = config
        self._lock = threading.RLock()
        self._events: Optional[list[dict]] = None  # loaded lazily for runs found on disk
        self._view: Optional[RunState] = None  # the events folded so far (``state()``)
        self._folded = 0
        self._status = status
        self._done = threading.Event()
        self._subscribers: list[EventCallback] = []
        self._control = Control(self.path)
        self._proc: Optional[subprocess.Popen] = None
        self._pid: Optional[int] = None
        self._thread: Optional[threading.Thread] = None
        self._stop_requested = False
        self._killed = False
        self._kill_reason = "killed on request"
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

    def hold(self, timeout: float = 20.0) -> bool:
        """Hold this in-kernel run between steps; True once it holds. For abandoning it when this process
        exits next: between steps no file is half-written (a save cut short at exit leaves a partial
        checkpoint). A stop asked for but not yet taken becomes the hold; one already taken is saving its
        last checkpoint, and is let finish within ``timeout``."""
        if self.done or self.mode == "process":
            return False
        self._control.request("pause")
        self._control.request("stop", False)  # the engine reads stop before pause: it sees one or the other
        deadline = time.monotonic() + timeout
        while not self.done and time.monotonic() < deadline:
            if self.state().status == "paused":
                return True
            self._done.wait(0.05)
        return False

    def save_checkpoint(self) -> None:
        """Save a checkpoint after the current step, and carry on."""
        if not self.done:
            self._control.request("save")

    def kill(self, reason: str = "killed on request") -> None:
        """End the worker process now (SIGTERM, then SIGKILL); the run ends as stopped with ``reason``."""
        if self.done or self._pid is None or self.mode != "process":
            return
        self._killed = True
        self._kill_reason = reason
        pid = self._pid
        supervise.signal_group(pid, signal.SIGTERM)

        def finish() -> None:
            if not self.done and alive(owner_info(self.path) or {}):
                supervise.signal_group(pid, signal.SIGKILL)

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
        return log_tail(self.path, n)

    def state(self) -> RunState:
        """The run as its events so far say it is (``ftkit.runstate.RunState``, folded as they arrive)."""
        with self._lock:
            if self._events is None:
                self._events = read_events(self.path / "events.jsonl")[0]
            return self._fold()

    def _fold(self) -> RunState:
        if self._view is None or self._folded > len(self._events):
            try:
                config = self.config
            except Exception:
                config = None
            self._view, self._folded = RunState(**for_config(config)), 0
        for event in self._events[self._folded:]:
            self._view.apply(event)
        self._folded = len(self._events)
        return self._view

    # ---- internals ------------------------------------------------------------

    def _set_status(self, status: str) -> None:
        with self._lock:
            if self._status not in FINAL_STATUSES:
                self._status = status

    def _record(self, event: dict) -> None:
        """Take one new event: keep it, fold it into the run's state, update the status, hand it on.

        The status is the state's, except for what only the controller knows:
        queued, starting, and stopping once a stop was asked for.
        """
        with self._lock:
            if self._events is None:
                self._events = read_events(self.path / "events.jsonl")[0]
            else:
                self._events.append(event)
            view = self._fold()
            kind = event.get("type")
            if kind == "ended":
                self._status = view.status
            elif self._status not in FINAL_STATUSES:
                if kind == "status" and event.get("status") in STATUSES:
                    status = view.status
                    if self._stop_requested and status in ("running", "paused"):
                        status = "stopping"
                    self._status = status
                elif kind in ("started", "step") and self._status in ("queued", "starting"):
                    self._status = "stopping" if self._stop_requested else "running"
        self._controller._dispatch(self, event)


def _subscribe(lock, subscribers: list, callback) -> Callable[[], None]:
    """Add ``callback`` to ``subscribers``; the returned function takes it out again."""
    with lock:
        subscribers.append(callback)

    def unsubscribe() -> None:
        with lock:
            if callback in subscribers:
                subscribers.remove(callback)

    return unsubscribe
