"""Events: what a run says about itself, one JSON object per line in ``events.jsonl``.

Types: ``started`` (parameters, device), ``step`` (loss, learning rate, grad
norm, throughput, memory), ``eval`` (task metrics), ``sample`` (generations),
``checkpoint``, ``log``, ``status`` and ``ended`` (status, reason, summary).
The file is the durable record; an in-process queue is only a faster path.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Union

EVENT_TYPES = ("started", "step", "eval", "sample", "checkpoint", "log", "status", "ended")
FINAL_STATUSES = ("finished", "failed", "stopped")

Sink = Callable[[dict], None]


def make_event(type: str, **fields: Any) -> dict:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return {"type": type, "time": round(time.time(), 4), **fields}


class JsonlWriter:
    """Appends events to a file, one line each, flushed as written so a crash loses none."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"), default=_jsonable) + "\n"
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line)
            self._file.flush()
            if event["type"] in ("ended", "checkpoint"):
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _jsonable(value: Any) -> Any:
    """numpy and torch scalars become plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_events(path: Union[str, os.PathLike], offset: int = 0) -> tuple[list[dict], int]:
    """Events from byte ``offset`` on, and the offset after the last complete line.

    A line cut short by a crash is left for the next read (or ignored for good).
    """
    events: list[dict] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return events, offset
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        try:
            events.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return events, offset + end


def iter_events(path: Union[str, os.PathLike]) -> Iterator[dict]:
    yield from read_events(path)[0]


def fanout(*sinks: Sink) -> Sink:
    """One sink that forwards to several; a failing subscriber never stops training."""

    def emit(event: dict) -> None:
        for sink in sinks:
            try:
                sink(event)
            except Exception:  # a UI bug must not kill a run
                pass

    return emit
