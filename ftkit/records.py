"""Writes to a run's record: atomic JSON files, per-rank files, and closing a run whose worker cannot.

Reading and creating run folders is ``ftkit.store``; the events themselves are
written through ``ftkit.events``. Everything here keeps the record readable
when the disk is full or the folder read-only: a write that fails leaves the
previous file whole.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Optional

from .events import FINAL_STATUSES, SEAL, JsonlWriter, dumps, make_event, read_events
from .runstate import RunState, for_config
from .store import log_tail


#: the label names a run's head was built with (its training data's), for predict and export
LABELS_FILE = "labels.json"


def write_json(path, data: Any, indent: Optional[int] = 2) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=indent, default=str))
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path) -> Optional[Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---- per-rank files ------------------------------------------------------------------------------


def rank_file(run_dir, rank: int) -> Path:
    return Path(run_dir) / "ranks" / f"rank-{rank}.json"


def update_rank(run_dir, rank: int, /, **fields) -> None:
    """Merge ``fields`` (those of ``events.RankRecord``) into this rank's file, written whole."""
    path = rank_file(run_dir, rank)
    path.parent.mkdir(exist_ok=True)
    data = read_json(path)
    data = data if isinstance(data, dict) else {}
    data.update(fields)
    write_json(path, data, indent=None)


def read_ranks(run_dir) -> list[dict]:
    """Every rank's file, rank 0 first."""
    def number(p: Path) -> int:
        tail = p.stem.split("-")[-1]
        return int(tail) if tail.isdigit() else 0

    out = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank-*.json"), key=number):
        data = read_json(path)
        if isinstance(data, dict):
            out.append({"rank": number(path), **data})
    return out


# ---- closing a run -----------------------------------------------------------------------------


@contextlib.contextmanager
def closing_lock(run_dir):
    """Held while a run is closed, so two lookers (a CLI and the server extension) never both close it."""
    try:
        f = open(Path(run_dir) / ".closing", "a")
    except OSError:
        yield
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        f.close()


def close(run_dir, status: str, reason: str, exit_code: Optional[int] = None,
          log_tail: Optional[list] = None, config: Any = None) -> dict:
    """Append the missing ``ended`` event and write ``summary.json``, so the record is complete.

    The summary comes from the events through ``RunState``. On a full disk or
    a read-only folder the run still ends (the returned event says how); a
    later looker closes the record on disk once it can. A run closed by
    someone else meanwhile is left as it is, and its own final event returned.
    """
    run_dir = Path(run_dir)
    path = run_dir / "events.jsonl"
    with closing_lock(run_dir):
        events = read_events(path)[0]
        if events and events[-1]["type"] == "ended":
            return events[-1]
        if config is None:
            config = _config(run_dir)
        state = RunState.fold(events, **for_config(config))
        summary = state.summary_for(run_dir.name, status, reason, config, exit_code=exit_code)
        event = make_event("ended", status=status, reason=reason, exit_code=exit_code,
                           log_tail=log_tail or [], summary=summary)
        try:
            (run_dir / SEAL).touch()  # a writer still running (an abandoned thread) adds nothing after this
        except OSError:
            pass
        try:
            write_json(run_dir / "summary.json", summary)
            terminate_partial_line(path)
            writer = JsonlWriter(path, final=True)
            try:
                writer(event)
            finally:
                writer.close()
        except OSError:
            pass
    return event


def close_if_dead(record) -> bool:
    """Close an unfinished run whose process is gone as ``failed`` with the reason; True if it was closed.

    What ``ftkit runs``, ``ftkit show`` and the server extension call before showing a run.
    """
    from .liveness import judge

    if record.status in FINAL_STATUSES:
        return False
    verdict = judge(record.path)
    if verdict.alive:
        return False
    close(record.path, "failed", verdict.reason, log_tail=log_tail(record.path, 40))
    return True


def _config(run_dir: Path):
    try:
        from .config import RunConfig

        return RunConfig.from_json(run_dir / "config.json")
    except Exception:
        return None


def terminate_partial_line(path) -> None:
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


def replace_last_line(path, event: dict) -> None:
    """Rewrite the file's last (complete) line with ``event``; every earlier line stays as written.

    Written over the old line in place: if the disk has no room for the longer
    line, the old one is put back, so the final event is never lost.
    """
    line = (dumps(event) + "\n").encode()
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
            write_all(f, line)
            f.truncate()
            os.fsync(f.fileno())
        except OSError:
            f.seek(start)
            write_all(f, data[start - base:])
            f.truncate()
            raise


def write_all(f, data: bytes) -> None:
    """Unbuffered writes may be short (a disk filling up): write until all is out or it raises."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]
