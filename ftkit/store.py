"""The run store: one folder per run, the durable record of everything it did.

``runs/<run-id>/`` holds ``config.yaml`` (and ``config.json`` for the worker),
``events.jsonl``, ``checkpoints/``, ``final/`` (adapter or model, tokenizer),
``logs/`` and ``summary.json``. Listing and reloading needs no running process.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .events import FINAL_STATUSES, read_events
from .runstate import RunState, for_config

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHECKPOINT = re.compile(r"^checkpoint-\d+$")
#: below this many free bytes a failed write is taken to be the disk's fault
LOW_SPACE = 1 << 20


def runs_root(runs_dir: Optional[str] = None) -> Path:
    """The runs folder, made absolute here: workers start inside their run folder, and a notebook may
    change its working folder later."""
    return Path(runs_dir or os.environ.get("FTKIT_RUNS_DIR") or "runs").expanduser().absolute()


@dataclass
class RunRecord:
    """A run as found on disk."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self):
        from .config import RunConfig

        return RunConfig.from_json(self.path / "config.json")

    def config_dict(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def events(self) -> list[dict]:
        return read_events(self.path / "events.jsonl")[0]

    @property
    def summary(self) -> Optional[dict]:
        """``summary.json``, or the summary the final event carries when that file could not be written."""
        try:
            return json.loads((self.path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            pass
        events = self.events()
        if events and events[-1]["type"] == "ended" and isinstance(events[-1].get("summary"), dict):
            return events[-1]["summary"]
        return None

    def state(self) -> RunState:
        """The run as its events say it is (``ftkit.runstate.RunState``)."""
        try:
            config = self.config
        except Exception:
            config = None
        return RunState.fold(self.events(), **for_config(config))

    @property
    def status(self) -> str:
        try:
            summary = json.loads((self.path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            summary = None
        if isinstance(summary, dict) and summary.get("status") in FINAL_STATUSES:
            return summary["status"]
        return RunState.fold(self.events()).status

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a half-written one lacks its marker)."""
        folder = self.path / "checkpoints"
        found = [p for p in folder.glob("checkpoint-*") if CHECKPOINT.match(p.name) and checkpoint_complete(p)]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    def drop_partial_writes(self) -> list[Path]:
        """Delete half-written checkpoints and a half-saved ``final/`` to make room after a full disk.

        Only for a run that failed: its ``final/`` exists only if saving it failed.
        Config, events and complete checkpoints stay. Returns what was removed.
        """
        gone = [p for p in (self.path / "checkpoints").glob("checkpoint-*")
                if p.is_dir() and not checkpoint_complete(p)]
        if (self.path / "final").is_dir():
            gone.append(self.path / "final")
        for path in gone:
            shutil.rmtree(path, ignore_errors=True)
        return gone

    @property
    def started(self) -> float:
        """When the run was created: its config is written right after the folder."""
        config = self.path / "config.json"
        return (config if config.exists() else self.path).stat().st_mtime


def run_path(run, runs_dir: Optional[str] = None) -> Path:
    """The folder of ``run``: a ``Run`` or record (its ``path``), a run folder, or an id or any unique part of one.

    Raises KeyError naming what is missing (or the runs an ambiguous part matches).
    """
    path = getattr(run, "path", None)
    if path is not None:
        return Path(path)
    if isinstance(run, (str, os.PathLike)) and (Path(run) / "config.json").is_file():
        return Path(run)
    return RunStore(runs_dir).get(str(run)).path


def log_tail(run_dir, n: int = 40) -> list[str]:
    """The last ``n`` lines of the worker's output (``logs/worker.log``), or of its log events."""
    log = Path(run_dir) / "logs" / "worker.log"
    if log.exists():
        return tail_lines(log, n)
    lines: list[str] = []
    for event in read_events(Path(run_dir) / "events.jsonl")[0]:
        if event["type"] == "log":
            lines.extend(str(event.get("message", "")).splitlines())
    return lines[-n:]


def tail_lines(path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip("\r") for line in deque(text.splitlines(), maxlen=n)]


def checkpoint_complete(folder: Path) -> bool:
    """Transformers writes ``trainer_state.json`` last: a checkpoint killed mid-save has none, or a cut one."""
    try:
        return isinstance(json.loads((Path(folder) / "trainer_state.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def free_bytes(path: Union[str, os.PathLike]) -> Optional[int]:
    """Free space on the disk holding ``path`` (or its nearest existing parent); None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_full(exc: BaseException, path: Union[str, os.PathLike]) -> bool:
    """Whether ``exc`` (or what caused it) is a write that failed for want of space near ``path``.

    torch's checkpoint writer reports ENOSPC without its errno (e.g.
    "unexpected pos ..."), so any failure while that disk has almost no room
    left counts too.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "no space left" in text or "quota exceeded" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE


def disk_full_reason(path: Union[str, os.PathLike]) -> str:
    """The fix for a full disk, naming where the run writes."""
    return (f"no space left on device holding {path}: free space there, "
            "or set runs_dir to a folder on a disk with room")


def permission_denied(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write refused for want of permission (a read-only folder)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)):
            return True
        if "permission denied" in str(exc).lower() or "read-only file system" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def permission_reason(path: Union[str, os.PathLike], exc: Optional[BaseException] = None) -> str:
    """The fix for a run folder that cannot be written, naming where."""
    where = getattr(exc, "filename", None) or path
    return (f"permission denied writing {where}: make the runs folder writable again "
            f"(e.g. chmod -R u+w {path}) and resume from the last checkpoint, "
            "or set runs_dir to a folder you can write")


class RunStore:
    def __init__(self, root: Union[str, os.PathLike, None] = None):
        self.root = runs_root(None if root is None else str(root))

    def create(self, config) -> RunRecord:
        """A new run folder holding the config. Call only for a config that passed every check."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = re.sub(r"[^A-Za-z0-9_-]+", "-", config.name or f"{config.method.name}-{config.task.name}")
        while True:
            path = self.root / f"{stamp}-{label}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        (path / "logs").mkdir()
        config.to_yaml(path / "config.yaml")
        config.to_json(path / "config.json")
        return RunRecord(path)

    def runs(self) -> list[RunRecord]:
        if not self.root.is_dir():
            return []
        found = [RunRecord(p) for p in self.root.iterdir() if (p / "config.json").is_file()]
        return sorted(found, key=lambda r: r.id)

    def get(self, run_id: str) -> RunRecord:
        """The run whose id is ``run_id`` or, failing that, the one run whose id contains it."""
        if not RUN_ID.match(run_id or ""):
            raise KeyError(f"not a run id: {run_id!r}")
        path = self.root / run_id
        if (path / "config.json").is_file():
            return RunRecord(path)
        matches = [r for r in self.runs() if run_id in r.id]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = "\n  ".join(r.id for r in matches[:20]) + ("\n  ..." if len(matches) > 20 else "")
            raise KeyError(f"{run_id!r} matches {len(matches)} runs in {self.root}; give more of the id:\n  {shown}")
        raise KeyError(f"no run {run_id!r} in {self.root}")
