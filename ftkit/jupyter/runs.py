"""What the runs panel shows, read from the run store; no tornado here, so it tests alone.

A run id is a folder name inside the runs folder and nothing else: ids are
checked against the store's strict pattern and the resolved folder must sit
directly inside the runs folder, so no request reaches a path outside it.
Events of unfinished runs are read incrementally (from the last byte offset
seen), so polling every couple of seconds stays cheap on long runs.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..control import Control
from ..controller import ACTIVE
from ..events import FINAL_STATUSES, read_events
from ..store import RUN_ID, RunRecord


class RunNotFound(LookupError):
    """No run folder with this id (HTTP 404)."""


class BadRunId(ValueError):
    """The id is not a run folder name (HTTP 400)."""


def run_path(root: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` inside ``root``; refuses anything that could leave it."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id) or ".." in run_id:
        raise BadRunId(f"invalid run id {run_id!r}: use the folder name of a run "
                       "(letters, digits, '.', '_' and '-'; no slashes, no '..')")
    base = root.resolve()
    path = (base / run_id).resolve()
    if path.parent != base:
        raise BadRunId(f"invalid run id {run_id!r}: it points outside the runs folder")
    if not (path / "config.json").is_file():
        raise RunNotFound(f"no run {run_id!r} in {root}")
    return path


@dataclass
class _Progress:
    """What the events of one run said so far, and where reading stopped."""

    offset: int = 0
    status: Optional[str] = None
    step: Optional[int] = None
    max_steps: Optional[int] = None


@dataclass
class RunRows:
    """Rows for the panel from the runs in ``root``, newest first."""

    root: Path
    _progress: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rows(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        rows = []
        for entry in self.root.iterdir():
            try:
                rows.append(self.row(run_path(self.root, entry.name)))
            except (BadRunId, RunNotFound):
                continue  # not a run folder, or a link out of the runs folder
            except (OSError, ValueError, KeyError):
                continue  # a folder being written right now: it shows on the next poll
        return sorted(rows, key=lambda r: (r["started"], r["id"]), reverse=True)

    def row(self, path: Path) -> dict:
        record = RunRecord(path)
        config = record.config_dict()
        summary = record.summary or {}
        final = summary.get("status") in FINAL_STATUSES
        progress = self._read(path, final)
        best = summary.get("best") or None
        return {
            "id": record.id,
            "status": summary["status"] if final else (progress.status or "created"),
            "method": config["method"]["name"],
            "task": config["task"]["name"],
            "model": config.get("model", {}).get("name_or_path"),
            "best": best and {"metric": best["metric"], "value": best["value"], "step": best.get("step")},
            "started": record.started,
            "steps": summary.get("steps", progress.step),
            "max_steps": summary.get("max_steps") or progress.max_steps,
            "reason": summary.get("reason"),
        }

    def detail(self, path: Path) -> dict:
        record = RunRecord(path)
        return {**self.row(path), "path": str(path), "config": record.config_dict(), "summary": record.summary}

    def _read(self, path: Path, final: bool) -> _Progress:
        with self._lock:
            if final:  # the summary says it all; nothing more to follow
                return self._progress.pop(path.name, None) or _Progress()
            progress = self._progress.setdefault(path.name, _Progress())
            events, progress.offset = read_events(path / "events.jsonl", progress.offset)
            for event in events:
                kind = event.get("type")
                if kind in ("status", "ended"):
                    progress.status = event.get("status", progress.status)
                elif kind == "started":
                    progress.status = "running"
                    progress.max_steps = event.get("max_steps", progress.max_steps)
                if kind in ("step", "eval", "checkpoint") and event.get("step") is not None:
                    progress.step = event["step"]
            return progress


def request_stop(path: Path, status: str) -> None:
    """Ask a run to stop after its current step, as the controller's Stop button does.

    The marker file in ``run_dir/control/`` reaches a run training in a
    kernel's thread and a worker subprocess alike.
    """
    if status not in ACTIVE:
        raise ValueError(f"run {path.name!r} is {status}, not running: there is nothing to stop")
    Control(path).request("stop")
