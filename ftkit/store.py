"""The run store: one folder per run, the durable record of everything it did.

``runs/<run-id>/`` holds ``config.yaml`` (and ``config.json`` for the worker),
``events.jsonl``, ``checkpoints/``, ``final/`` (adapter or model, tokenizer),
``logs/`` and ``summary.json``. Listing and reloading needs no running process.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .events import FINAL_STATUSES, read_events

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def runs_root(runs_dir: Optional[str] = None) -> Path:
    return Path(runs_dir or os.environ.get("FTKIT_RUNS_DIR") or "runs").expanduser()


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
        try:
            return json.loads((self.path / "summary.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @property
    def status(self) -> str:
        summary = self.summary
        if summary and summary.get("status") in FINAL_STATUSES:
            return summary["status"]
        last = _last_status(self.path / "events.jsonl")
        return last or "created"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a half-written one lacks its marker)."""
        folder = self.path / "checkpoints"
        found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    @property
    def started(self) -> float:
        """When the run was created: its config is written right after the folder."""
        config = self.path / "config.json"
        return (config if config.exists() else self.path).stat().st_mtime


def _last_status(path: Path) -> Optional[str]:
    status = None
    for event in read_events(path)[0]:
        if event["type"] == "status":
            status = event["status"]
        elif event["type"] == "started":
            status = "running"
        elif event["type"] == "ended":
            status = event["status"]
    return status


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
        if not RUN_ID.match(run_id or ""):
            raise KeyError(f"not a run id: {run_id!r}")
        path = self.root / run_id
        if not (path / "config.json").is_file():
            matches = [r for r in self.runs() if r.id.startswith(run_id) or r.id.endswith(run_id)]
            if len(matches) == 1:
                return matches[0]
            raise KeyError(f"no run {run_id!r} in {self.root}" + (f" ({len(matches)} match)" if matches else ""))
        return RunRecord(path)
