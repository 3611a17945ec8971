"""A controller and runs that replay scripted events, so widget tests need no training.

They follow the controller's API: ``Controller.start/queue/runs/get/subscribe``
and ``Run.id/path/config/status/events/summary/subscribe/stop/pause/resume/
save_checkpoint/wait/log_tail``.
"""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ftkit.events import FINAL_STATUSES, JsonlWriter, make_event

_ids = itertools.count(1)


class FakeRun:
    def __init__(self, config, run_id: Optional[str] = None, status: str = "queued", path: Optional[Path] = None):
        self.id = run_id or f"fake-{next(_ids):04d}-{config.method.name}"
        self.config = config
        self.path = path or Path("runs") / self.id
        self.status = status
        self.events: list[dict] = []
        self.summary: Optional[dict] = None
        self.calls: list[str] = []
        self.logs: list[str] = []
        self._subscribers: list[Callable[[dict], None]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()

    # ---- the Run API ------------------------------------------------------

    def subscribe(self, callback: Callable[[dict], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def stop(self) -> None:
        self.calls.append("stop")
        self.emit(make_event("status", status="stopping", step=self.step))

    def pause(self) -> None:
        self.calls.append("pause")
        self.emit(make_event("status", status="paused", step=self.step))

    def resume(self) -> None:
        self.calls.append("resume")
        self.emit(make_event("status", status="running", step=self.step))

    def save_checkpoint(self) -> None:
        self.calls.append("save_checkpoint")
        self.emit(make_event("checkpoint", step=self.step, path=f"{self.path}/checkpoints/checkpoint-{self.step}"))

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._done.wait(timeout)

    def log_tail(self, n: int = 20) -> list[str]:
        return self.logs[-n:]

    # ---- driving it -------------------------------------------------------

    @property
    def step(self) -> int:
        steps = [e["step"] for e in self.events if e["type"] == "step"]
        return steps[-1] if steps else 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def emit(self, event: dict) -> None:
        """What the worker does: record the event, update the status, tell subscribers (on this thread)."""
        with self._lock:
            self.events.append(event)
            kind = event["type"]
            if kind == "started":
                self.status = "running"
            elif kind in ("status", "ended"):
                self.status = event["status"]
            if kind == "ended":
                self.summary = event.get("summary")
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
        if event["type"] == "ended":
            self._done.set()

    def play(self, events, every: int = 0, pause: float = 0.0) -> None:
        for i, event in enumerate(events, 1):
            self.emit(event)
            if every and i % every == 0 and pause:
                time.sleep(pause)


def training_events(max_steps: int = 100, *, eval_every: int = 25, metric: str = "accuracy", start_loss: float = 2.0,
                    decay: float = 0.02, s_per_step: float = 0.1, tokens_per_step: int = 512, cuda: bool = False,
                    status: str = "finished", trainable: int = 73_728, total: int = 22_786_432) -> list[dict]:
    """A plausible run's events: started, a step event per step, evals, samples and the end."""
    out = [make_event("status", status="starting"),
           make_event("started", max_steps=max_steps, start_step=0, world_size=1, device="cuda" if cuda else "cpu",
                      trainable_params=trainable, total_params=total, rss_mb=900.0)]
    loss = start_loss
    for step in range(1, max_steps + 1):
        loss = start_loss * math.exp(-decay * step) + 0.05 * math.sin(step)
        memory = {"rss_mb": 1000.0 + step % 7}
        if cuda:
            memory.update(cuda_allocated_mb=2000.0 + step % 5, cuda_peak_mb=2500.0)
        out.append(make_event(
            "step", step=step, max_steps=max_steps, epoch=step / max_steps, loss=loss,
            learning_rate=1e-3 * (1 - step / max_steps), grad_norm=1.0 + 0.1 * math.cos(step),
            tokens=step * tokens_per_step, tokens_per_s=tokens_per_step / s_per_step, samples_per_s=160.0,
            s_per_step=s_per_step, elapsed=round(step * s_per_step, 3), **memory,
        ))
        if eval_every and step % eval_every == 0:
            out.append(make_event("eval", step=step, epoch=step / max_steps,
                                  metrics={"loss": loss * 1.1, metric: min(1.0, 0.5 + step / (2 * max_steps)),
                                           "f1": 0.4 + step / (3 * max_steps)}))
            out.append(make_event("sample", step=step, samples=[{"prompt": "Great <b>kettle</b>", "output": "positive"}]))
    summary = {
        "status": status, "reason": None, "steps": max_steps, "max_steps": max_steps, "loss_first": start_loss,
        "loss_last": loss, "metrics": {"loss": loss * 1.1, metric: 1.0}, "best": {"metric": metric, "value": 1.0, "step": max_steps},
        "trainable_params": trainable, "total_params": total, "trainable_pct": round(100 * trainable / total, 4),
        "wall_s": max_steps * s_per_step + 3, "train_s": max_steps * s_per_step, "s_per_step": s_per_step,
        "tokens_seen": max_steps * tokens_per_step, "tokens_per_s": tokens_per_step / s_per_step,
        "peak_rss_mb": 1006.0, "peak_cuda_mb": 2500.0 if cuda else None, "final_dir": "runs/x/final",
    }
    out.append(make_event("log", level="info", message="saved adapter to runs/x/final"))
    out.append(make_event("ended", status=status, reason=None, summary=summary))
    return out


class FakeController:
    def __init__(self, runs_dir: Optional[str] = None):
        self.runs_dir = runs_dir
        self.runs: list[FakeRun] = []
        self.started: list = []  # configs passed to start()
        self.queued: list[tuple[list, int]] = []  # (configs, concurrent) passed to queue()
        self._subscribers: list[Callable[[dict], None]] = []

    def start(self, config) -> FakeRun:
        self.started.append(config)
        run = FakeRun(config, status="starting")
        self.runs.append(run)
        return run

    def queue(self, configs, concurrent: int = 1) -> list[FakeRun]:
        configs = list(configs)
        self.queued.append((configs, concurrent))
        runs = [FakeRun(c) for c in configs]
        self.runs.extend(runs)
        return runs

    def get(self, run_id: str) -> FakeRun:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise KeyError(f"no run {run_id!r}")

    def subscribe(self, callback: Callable[[dict], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)


def finished(config, run_id: Optional[str] = None, **kwargs) -> FakeRun:
    """A run that has already ended (as one reloaded from disk would be)."""
    run = FakeRun(config, run_id=run_id)
    run.play(training_events(**kwargs))
    assert run.status in FINAL_STATUSES
    return run


# ---- run folders as a dead worker leaves them ---------------------------------------------------


def dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, created


def killed_run(store, evals=((20, 0.5), (40, 1.0), (60, 0.75))):
    """A run that evaluated, then its worker died without its final event."""
    from ftkit.config import RunConfig

    record = store.create(RunConfig.preset("demo"))
    pid, created = dead_pid()
    (record.path / "worker.json").write_text(json.dumps({"mode": "process", "pid": pid, "create_time": created}))
    writer = JsonlWriter(record.path / "events.jsonl")
    writer(make_event("status", status="starting"))
    writer(make_event("started", max_steps=100, start_step=0, trainable_params=10, total_params=1000))
    for step in range(1, 61):
        writer(make_event("step", step=step, max_steps=100, loss=1.0 / step, rss_mb=500.0 + step))
        for at, accuracy in evals:
            if step == at:
                writer(make_event("eval", step=step, metrics={"loss": 0.1, "accuracy": accuracy}))
    writer.close()
    return record
