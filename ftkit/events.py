"""Events: what a run says about itself, one JSON object per line in ``events.jsonl``.

Each event type is a small declared type below (``Started``, ``Step``,
``Eval``, ``Sample``, ``Checkpoint``, ``Log``, ``Status``, ``Ended``); this
module is the one place events are made, written and read. On disk an event
is ``{"type": ..., "time": ..., "v": SCHEMA_VERSION, <fields>}``; files
written before the version existed read as version 0 and load the same.
Every rank also keeps ``ranks/rank-N.json`` (see ``RankRecord``, written by
the run store). The file is the durable record; an in-process queue is only
a faster path. ``ftkit.runstate.RunState`` folds events into the view of a run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Optional, Union

#: written into every event; bump when a field changes meaning (readers keep loading older ones)
SCHEMA_VERSION = 1
FINAL_STATUSES = ("finished", "failed", "stopped")
#: the file that says a run was closed for its writer (see ``JsonlWriter``)
SEAL = ".closed"

Sink = Callable[[dict], None]


@dataclass
class Event:
    """Fields every event has; ``extra`` keeps what a newer or older writer added beyond the declared ones."""

    type: ClassVar[str] = ""
    time: float = 0.0
    v: int = 0
    extra: dict = field(default_factory=dict, repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, self.extra.get(name, default)) if name != "extra" else default


@dataclass
class _Memory:
    """Memory of the process that sent the event, in MB (CUDA fields only on a GPU)."""

    rss_mb: Optional[float] = None
    cuda_allocated_mb: Optional[float] = None
    cuda_reserved_mb: Optional[float] = None
    cuda_peak_mb: Optional[float] = None


@dataclass
class Status(_Memory, Event):
    type: ClassVar[str] = "status"
    status: str = ""
    step: Optional[int] = None
    pid: Optional[int] = None


@dataclass
class Started(_Memory, Event):
    type: ClassVar[str] = "started"
    max_steps: int = 0
    start_step: int = 0
    world_size: int = 1
    device: Optional[str] = None
    trainable_params: Optional[int] = None
    total_params: Optional[int] = None
    method: Optional[str] = None
    task: Optional[str] = None
    model: Optional[str] = None
    train_rows: Optional[int] = None
    eval_rows: Optional[int] = None
    metric: Optional[str] = None  # the task's metric, for the best eval
    greater_is_better: Optional[bool] = None


@dataclass
class Step(_Memory, Event):
    type: ClassVar[str] = "step"
    step: int = 0
    max_steps: Optional[int] = None
    epoch: Optional[float] = None
    loss: Optional[float] = None
    learning_rate: Optional[float] = None
    grad_norm: Optional[float] = None
    tokens: Optional[int] = None
    tokens_per_s: Optional[float] = None
    samples_per_s: Optional[float] = None
    s_per_step: Optional[float] = None
    elapsed: Optional[float] = None
    rank_rss_mb: Optional[list] = None  # per rank, rank 0 first
    rank_peak_rss_mb: Optional[list] = None
    rank_nodes: Optional[list] = None  # per rank, the machine (node rank) it runs on


@dataclass
class Eval(_Memory, Event):
    type: ClassVar[str] = "eval"
    step: int = 0
    epoch: Optional[float] = None
    metrics: dict = field(default_factory=dict)


@dataclass
class Sample(Event):
    type: ClassVar[str] = "sample"
    step: int = 0
    samples: list = field(default_factory=list)


@dataclass
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""


@dataclass
class Log(Event):
    type: ClassVar[str] = "log"
    level: str = "info"
    message: str = ""


@dataclass
class Ended(Event):
    type: ClassVar[str] = "ended"
    status: str = "failed"
    reason: Optional[str] = None
    summary: Optional[dict] = None
    exit_code: Optional[int] = None
    log_tail: Optional[list] = None


@dataclass
class RankRecord:
    """``ranks/rank-N.json``: one rank of a run (merged field by field as the rank goes)."""

    rank: int = 0
    local_rank: Optional[int] = None
    world_size: Optional[int] = None
    pid: Optional[int] = None
    host: Optional[str] = None
    node: Optional[int] = None  # the machine's node rank (torchrun's GROUP_RANK)
    started: Optional[float] = None
    ended: Optional[float] = None
    status: Optional[str] = None
    reason: Optional[str] = None
    step: Optional[int] = None
    rss_mb: Optional[float] = None
    peak_rss_mb: Optional[float] = None


TYPES: dict[str, type] = {cls.type: cls for cls in (Started, Step, Eval, Sample, Checkpoint, Log, Status, Ended)}
EVENT_TYPES = ("started", "step", "eval", "sample", "checkpoint", "log", "status", "ended")
_FIELDS = {name: {f.name for f in dataclasses.fields(cls)} - {"extra", "time", "v"} for name, cls in TYPES.items()}


def make_event(type: str, **fields: Any) -> dict:
    """A new event as written to disk; only the fields its type declares are accepted."""
    if type not in TYPES:
        raise ValueError(f"unknown event type {type!r}")
    unknown = set(fields) - _FIELDS[type]
    if unknown:
        raise TypeError(f"{type} events have no field(s) {', '.join(sorted(unknown))}")
    return {"type": type, "time": round(time.time(), 4), "v": SCHEMA_VERSION, **fields}


def parse(event: dict) -> Event:
    """The typed view of one event dict (any version); unknown types raise ValueError."""
    cls = TYPES.get(event.get("type"))
    if cls is None:
        raise ValueError(f"unknown event type {event.get('type')!r}")
    declared = _FIELDS[cls.type]
    known = {k: v for k, v in event.items() if k in declared}
    extra = {k: v for k, v in event.items() if k not in declared and k not in ("type", "time", "v")}
    return cls(time=event.get("time", 0.0), v=event.get("v", 0), extra=extra, **known)


class JsonlWriter:
    """Appends events to a file, one line each, flushed as written so a crash loses none.

    Once the run has been closed by someone else (``records.close`` leaves a
    ``.closed`` seal beside the file, e.g. a run abandoned on a second Ctrl-C),
    later events are dropped, so its ``ended`` event stays the last line.
    """

    def __init__(self, path: Union[str, os.PathLike], final: bool = False):
        self.path = Path(path)
        self._seal = None if final else self.path.parent / SEAL
        self._file = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        line = dumps(event) + "\n"
        with self._lock:
            if self._file.closed or (self._seal is not None and self._seal.exists()):
                return
            self._file.write(line)
            self._file.flush()
            if event["type"] in ("ended", "checkpoint"):
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


def dumps(event: dict) -> str:
    """One event as its line in ``events.jsonl`` (no newline)."""
    return json.dumps(event, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    """numpy and torch scalars become plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_events(path: Union[str, os.PathLike], offset: int = 0) -> tuple[list[dict], int]:
    """Events from byte ``offset`` on, and the offset after the last complete line.

    A line cut short by a crash is left for the next read (or ignored for good);
    lines that are not events of a known type are skipped.
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
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") in TYPES:
            events.append(event)
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
