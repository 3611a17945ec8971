"""What the runs panel shows, read from the run store; no tornado here, so it tests alone.

A run id is a folder name inside the runs folder and nothing else: ids are
checked against the store's strict pattern and the resolved folder must sit
directly inside the runs folder, so no request reaches a path outside it.
Events of unfinished runs are read incrementally (from the last byte offset
seen) into a ``RunState``, so polling every couple of seconds stays cheap on
long runs. An unfinished run whose process is gone (``ftkit.liveness``) is
closed as ``failed`` with the reason before it is shown.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..control import Control
from ..events import FINAL_STATUSES, read_events
from ..records import close_if_dead
from ..runstate import ACTIVE, RunState, for_config, read_summary
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

    state: RunState
    offset: int = 0


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
        if not final and close_if_dead(record):  # its process died: closed as failed, with the reason
            summary = record.summary or {}
            final = summary.get("status") in FINAL_STATUSES
        state = self._read(record, final)
        if final:
            summary = read_summary(summary)
            best = summary.get("best") or None
            status, steps, max_steps = summary["status"], summary.get("steps"), summary.get("max_steps")
        else:
            best, status, steps, max_steps = state.best, state.status, state.step or None, state.max_steps or None
        return {
            "id": record.id,
            "status": status,
            "method": config["method"]["name"],
            "task": config["task"]["name"],
            "model": config.get("model", {}).get("name_or_path"),
            "best": best and {"metric": best["metric"], "value": best["value"], "step": best.get("step")},
            "started": record.started,
            "steps": steps,
            "max_steps": max_steps,
            "reason": summary.get("reason") if final else None,
            **memory(state, summary if final else {}),
            "launcher": config.get("distributed", {}).get("launcher"),
            "nodes": nodes(config),
        }

    def detail(self, path: Path) -> dict:
        record = RunRecord(path)
        return {**self.row(path), "path": str(path), "config": record.config_dict(), "summary": record.summary}

    def _read(self, record: RunRecord, final: bool) -> RunState:
        path = record.path
        with self._lock:
            progress = self._progress.get(path.name)
            if progress is None:
                try:
                    config = record.config
                except Exception:
                    config = None
                progress = self._progress[path.name] = _Progress(RunState(**for_config(config)))
            if final and progress.offset:  # folded to its end once; nothing more to follow
                return progress.state
            events, progress.offset = read_events(path / "events.jsonl", progress.offset)
            for event in events:
                progress.state.apply(event)
            return progress.state


def memory(state: RunState, summary: dict) -> dict:
    """Memory per rank (MB, latest step; a finished run's lifetime peaks) and per machine (node rank -> MB)."""
    per_node = state.node_rss_mb
    return {"rank_rss_mb": summary.get("rank_peak_rss_mb") or state.rank_rss_mb,
            "node_rss_mb": {str(node): mb for node, mb in sorted(per_node.items())} if per_node else None}


def nodes(config: dict) -> int:
    """How many machines the run spans (torchrun's num_nodes, or the Slurm allocation's nodes)."""
    d = config.get("distributed") or {}
    if d.get("launcher") == "slurm":
        return int((d.get("slurm") or {}).get("nodes") or 1)
    return int(d.get("num_nodes") or 1)


def request_stop(path: Path, row) -> None:
    """Ask a run to stop after its current step, as the controller's Stop button does.

    ``row`` is the run's row (or just its status). The marker file in
    ``run_dir/control/`` reaches a run training in a kernel's thread and a
    worker subprocess alike. A run that has ended (a dead one is closed
    first, by ``RunRows.row``) raises ValueError saying how it ended.
    """
    row = row if isinstance(row, dict) else {"status": row}
    status = row.get("status")
    if status not in ACTIVE:
        why = f" ({row['reason']})" if row.get("reason") else ""
        raise ValueError(f"run {path.name!r} has already ended: {status}{why}; there is nothing to stop")
    Control(path).request("stop")
