"""Stop, pause, resume and save-now requests, delivered to a run between steps.

In-kernel runs share a ``Control`` object; subprocess runs read the same
requests from marker files in ``run_dir/control/`` (written by the
controller), so both modes honour the same buttons.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

REQUESTS = ("stop", "pause", "save")


class Control:
    def __init__(self, run_dir: Optional[Path] = None):
        self._flags = {name: threading.Event() for name in REQUESTS}
        self.folder = Path(run_dir) / "control" if run_dir else None

    # ---- the controller's side -------------------------------------------

    def request(self, name: str, on: bool = True) -> None:
        if name not in REQUESTS:
            raise ValueError(f"unknown request {name!r}")
        (self._flags[name].set if on else self._flags[name].clear)()
        if self.folder is not None:
            marker = self.folder / name
            if on:
                self.folder.mkdir(exist_ok=True)
                marker.touch()
            else:
                marker.unlink(missing_ok=True)

    # ---- the worker's side -------------------------------------------------

    def wanted(self, name: str) -> bool:
        if self._flags[name].is_set():
            return True
        return self.folder is not None and (self.folder / name).exists()

    def consume(self, name: str) -> bool:
        """True once per request (save-now)."""
        if self.wanted(name):
            self.request(name, False)
            return True
        return False
