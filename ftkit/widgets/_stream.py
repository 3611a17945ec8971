"""One plotted curve as one trace whose updates stay small however long a run grows.

A curve's trace holds a decimated *history* (at most ``max_points`` points: when it fills, every other
point goes, the last one stays) followed by the *tail*, the newest points at full resolution. When the
tail holds more than ``tail_points`` it is folded into the history. An update re-sends the whole trace
of each curve that changed, so its bytes are bounded by ``max_points + tail_points`` points per curve,
never by the run's length. Points travel as typed arrays (float32, or float64 for large x), which
plotly sends as binary buffers and validates without a per-element loop.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def tidy(value: Any) -> Any:
    """A number rounded to 6 significant digits (fewer bytes on the wire, same plot)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


class Ema:
    """Debiased exponential moving average (TensorBoard-style smoothing)."""

    def __init__(self, weight: float = 0.9):
        self.weight = weight
        self.value = 0.0
        self.count = 0

    def __call__(self, y: float) -> float:
        self.count += 1
        self.value = self.weight * self.value + (1 - self.weight) * y
        return self.value / (1 - self.weight ** self.count)


class Stream:
    """One curve on a figure: the trace at ``index``, decimated history then full-resolution tail."""

    def __init__(self, name: str, index: int, max_points: int = 400, tail_points: int = 100):
        self.name = name
        self.index = index  # the trace's index in the figure
        self.max_points = max_points
        self.tail_points = tail_points
        self.hx: list = []
        self.hy: list = []
        self.tx: list = []
        self.ty: list = []
        self.total = 0  # points ever added
        self._dirty = False

    def add(self, x: Any, y: Any) -> None:
        y = tidy(y)
        if y is None or x is None:
            return
        self.tx.append(tidy(x))
        self.ty.append(y)
        self.total += 1
        self._dirty = True
        if len(self.tx) > self.tail_points:
            self._fold()

    def _fold(self) -> None:
        self.hx += self.tx
        self.hy += self.ty
        self.tx, self.ty = [], []
        while len(self.hx) > self.max_points:
            keep = list(range(0, len(self.hx) - 1, 2)) + [len(self.hx) - 1]
            self.hx = [self.hx[i] for i in keep]
            self.hy = [self.hy[i] for i in keep]

    def reset(self, xs: list, ys: list) -> None:
        """Replace all points (e.g. a new x-axis); the trace is re-sent once."""
        self.hx, self.hy, self.tx, self.ty, self.total = [], [], [], [], 0
        for x, y in zip(xs, ys):
            self.add(x, y)
        self._dirty = True

    @property
    def points(self) -> int:
        """Points on screen."""
        return len(self.hx) + len(self.tx)

    def take(self) -> Optional[dict]:
        """The trace's {x, y} if it changed since the last call, else None."""
        if not self._dirty:
            return None
        self._dirty = False
        x, y = self.xy()
        return {"x": _xs(x), "y": np.asarray(y, dtype=np.float32)}

    def xy(self) -> tuple[list, list]:
        """All points on screen, in order."""
        return self.hx + self.tx, self.hy + self.ty


def _xs(values: list) -> np.ndarray:
    """x values as float32 while that is exact enough (steps below 2**24), else float64."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array) or float(np.abs(array).max()) < 2 ** 24 and (np.all(array == np.round(array)) or
                                                                     float(np.abs(array).max()) < 1e5):
        return array.astype(np.float32)
    return array


def add_stream(fig: go.Figure, name: str, *, row: Optional[int] = None, col: Optional[int] = None,
               color: str = PALETTE[0], width: float = 2, opacity: float = 1.0, mode: str = "lines",
               dash: Optional[str] = None, showlegend: bool = True, legendgroup: Optional[str] = None,
               max_points: int = 400, tail_points: int = 100) -> Stream:
    """Add the trace of a curve to ``fig`` and return its ``Stream``."""
    where = dict(row=row, col=col) if row is not None else {}
    fig.add_trace(go.Scatter(mode=mode, line=dict(color=color, width=width, dash=dash),
                             marker=dict(color=color, size=5), opacity=opacity, legendgroup=legendgroup or name,
                             name=name, showlegend=showlegend, x=(), y=()), **where)
    return Stream(name, len(fig.data) - 1, max_points=max_points, tail_points=tail_points)


def push(fig: Any, streams: list[Stream]) -> int:
    """Send what changed in ``streams`` as one update; returns how many traces changed."""
    changes = {s.index: props for s in streams if (props := s.take()) is not None}
    if not changes:
        return 0
    with fig.batch_update():
        for index, props in changes.items():
            fig.data[index].x = props["x"]
            fig.data[index].y = props["y"]
    changed = getattr(fig, "changed", None)
    if callable(changed):  # a static plot redraws its image
        changed()
    return len(changes)
