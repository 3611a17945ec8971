"""Event intake for live views: buffer events from any thread, hand them over in batches, throttled.

``put`` is what a run's ``subscribe`` calls (from the run's thread); at most
every ``interval`` seconds a timer thread calls ``handle(batch)``. With
``interval=None`` nothing is scheduled and the owner calls ``flush()``.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable, Optional


class EventFeed:
    def __init__(self, handle: Callable[[list[dict]], None], interval: Optional[float] = 0.25):
        self._handle = handle
        self.interval = interval
        self._buffer: list[dict] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._timer: Optional[threading.Timer] = None
        self._last = 0.0
        self._closed = False
        self.flushes = 0
        self.error: Optional[str] = None  # the last exception a batch raised, formatted

    def put(self, event: dict) -> None:
        with self._lock:
            if self._closed:
                return
            self._buffer.append(event)
            if self._timer is None and self.interval is not None:
                delay = max(0.0, self._last + self.interval - time.monotonic())
                self._timer = threading.Timer(delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> int:
        """Handle everything buffered now; returns how many events."""
        with self._flushing:
            with self._lock:
                events, self._buffer = self._buffer, []
                timer, self._timer = self._timer, None
                self._last = time.monotonic()
            if timer is not None and timer is not threading.current_thread():
                timer.cancel()
            if not events:
                return 0
            self.flushes += 1
            try:
                self._handle(events)
            except Exception:  # a display bug must not stop the feed
                self.error = traceback.format_exc()
            return len(events)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
