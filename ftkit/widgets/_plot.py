"""Plot helpers that keep live updates small however long a run grows.

A plotted series is two traces drawn as one line: a *history* trace holding
older points, decimated to at most ``max_points``, and a short *tail* trace
that takes the new points. An ordinary update re-sends only the tail (about
``tail_points`` points at most); when the tail fills up it is folded into the
history, which is then re-sent once, and one update folds at most one series.
So the bytes of an update are bounded by the tails plus one history, never by
the run's length. Points travel as typed arrays (float32, or float64 for large x), which
plotly sends as binary buffers and validates without a per-element loop.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from typing import Any, Optional

import ipywidgets as widgets
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
    """One series on a figure, as a decimated history trace plus an append-only tail trace."""

    def __init__(self, name: str, history: int, tail: int, max_points: int = 2000, tail_points: int = 100):
        self.name = name
        self.index = (history, tail)  # trace indexes in the figure
        self.max_points = max_points
        self.tail_points = tail_points
        self.hx: list = []
        self.hy: list = []
        self.tx: list = []
        self.ty: list = []
        self.total = 0  # points ever added
        self._dirty_history = False
        self._dirty_tail = False

    def add(self, x: Any, y: Any) -> None:
        y = tidy(y)
        if y is None or x is None:
            return
        self.tx.append(tidy(x))
        self.ty.append(y)
        self.total += 1
        self._dirty_tail = True
        if len(self.tx) > 2 * self.tail_points:  # hard limit; ``push`` folds earlier, one series at a time
            self._fold()

    @property
    def full(self) -> bool:
        return len(self.tx) > self.tail_points

    def _fold(self) -> None:
        start = 1 if self.hx else 0  # the tail's first point repeats the history's last
        self.hx += self.tx[start:]
        self.hy += self.ty[start:]
        while len(self.hx) > self.max_points:
            keep = list(range(0, len(self.hx) - 1, 2)) + [len(self.hx) - 1]
            self.hx = [self.hx[i] for i in keep]
            self.hy = [self.hy[i] for i in keep]
        self.tx, self.ty = [self.hx[-1]], [self.hy[-1]]
        self._dirty_history = True

    def reset(self, xs: list, ys: list) -> None:
        """Replace all points (e.g. a new x-axis); the whole series is re-sent once."""
        self.hx, self.hy, self.tx, self.ty, self.total = [], [], [], [], 0
        for x, y in zip(xs, ys):
            self.add(x, y)
            if self.full:
                self._fold()
        if self.tx:
            self._fold()
        self._dirty_history = self._dirty_tail = True

    @property
    def points(self) -> int:
        """Points on screen (history + tail, without the shared joint)."""
        return len(self.hx) + max(0, len(self.tx) - (1 if self.hx else 0))

    def take(self) -> dict[int, dict]:
        """Trace index -> {x, y} for the traces that changed since the last call."""
        out: dict[int, dict] = {}
        if self._dirty_history:
            out[self.index[0]] = {"x": _xs(self.hx), "y": np.asarray(self.hy, dtype=np.float32)}
        if self._dirty_tail or self._dirty_history:
            out[self.index[1]] = {"x": _xs(self.tx), "y": np.asarray(self.ty, dtype=np.float32)}
        self._dirty_history = self._dirty_tail = False
        return out

    def xy(self) -> tuple[list, list]:
        """All points on screen, in order."""
        start = 1 if self.hx else 0
        return self.hx + self.tx[start:], self.hy + self.ty[start:]


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
               max_points: int = 2000, tail_points: int = 100) -> Stream:
    """Add the two traces of a series to ``fig`` and return its ``Stream``."""
    group = legendgroup or name
    style = dict(mode=mode, line=dict(color=color, width=width, dash=dash), marker=dict(color=color, size=5),
                 opacity=opacity, legendgroup=group, name=name, x=(), y=())
    where = dict(row=row, col=col) if row is not None else {}
    # the legend entry sits on the tail: it has points from the first one on (plotly hides empty traces' entries)
    fig.add_trace(go.Scatter(showlegend=False, **style), **where)
    fig.add_trace(go.Scatter(showlegend=showlegend, **style), **where)
    n = len(fig.data)
    return Stream(name, n - 2, n - 1, max_points=max_points, tail_points=tail_points)


def push(fig: go.Figure, streams: list[Stream]) -> int:
    """Send what changed in ``streams`` as one update; returns how many traces changed."""
    full = [s for s in streams if s.full]
    if full:  # fold the fullest tail only: one history re-sent per update at most
        max(full, key=lambda s: len(s.tx) / s.tail_points)._fold()
    changes: dict[int, dict] = {}
    for stream in streams:
        changes.update(stream.take())
    if not changes:
        return 0
    with fig.batch_update():
        for index, props in changes.items():
            fig.data[index].x = props["x"]
            fig.data[index].y = props["y"]
    if isinstance(fig, Plot):
        fig.changed()
    return len(changes)


class Meter:
    """Counts the bytes of every plot message a FigureWidget sends to the browser."""

    NAMES = ["_py2js_update", "_py2js_restyle", "_py2js_relayout", "_py2js_addTraces"]

    def __init__(self, fig):
        self.messages = 0
        self.total = 0
        self.last = 0
        self._pending = 0
        if isinstance(fig, Plot):  # static images count themselves; the FigureWidget behind it is observed
            fig.__dict__.setdefault("_meters", []).append(self)
            fig = fig.figure
        if hasattr(fig, "_py2js_update"):
            fig.observe(self._seen, names=self.NAMES)

    def _seen(self, change) -> None:
        if change["new"] is None:
            return
        size = len(json.dumps(change["new"], default=_size_default, separators=(",", ":")))
        self.messages += 1
        self.total += size
        self._pending += size

    def take(self) -> int:
        """Bytes sent since the last call."""
        out, self._pending = self._pending, 0
        self.last = out
        return out


def _size_default(value: Any) -> Any:
    """Stand-ins of the right size: plotly sends 1-D numeric arrays (but 64-bit ints) as raw bytes."""
    if isinstance(value, memoryview):
        return "x" * value.nbytes
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "uif" \
            and value.dtype not in (np.int64, np.uint64):
        return "x" * value.nbytes
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def fit_width(fig) -> None:
    """Have the browser size a ``FigureWidget`` to its container now.

    The widget's view draws at plotly's default 700 px when it renders before it is on the page (as it
    does inside ipywidgets boxes) and does not resize by itself; a relayout of ``autosize`` makes it
    measure its container again. It is sent even when ``autosize`` is already set (plotly drops a
    relayout that changes nothing), costs a few dozen bytes, and is a no-op for a view that is hidden
    or not rendered yet. Plain figures (no widget) ignore it.
    """
    send = getattr(fig, "_send_relayout_msg", None)
    if callable(send):
        send({"autosize": True})


MODES = ("auto", "figurewidget", "static")
_default: Optional[str] = None  # set_plots(); else FTKIT_PLOTS; else "auto"
_proven = threading.Event()  # a FigureWidget view in this kernel has reported back from the browser


def set_plots(mode: Optional[str]) -> None:
    """The plot path for every ftkit plot made from now on (``None``: back to ``FTKIT_PLOTS`` or ``auto``)."""
    global _default
    _default = None if mode is None else plots_mode(mode)


@contextlib.contextmanager
def using(mode: Optional[str]):
    """Plots made inside the ``with`` block take ``mode`` unless they name their own (``None``: no change)."""
    global _default
    before = _default
    if mode is not None:
        _default = plots_mode(mode)
    try:
        yield
    finally:
        _default = before


def plots_mode(mode: Optional[str] = None) -> str:
    """``mode``, else ``set_plots``'s, else the ``FTKIT_PLOTS`` environment variable, else ``auto``."""
    value = (mode or _default or os.environ.get("FTKIT_PLOTS") or "auto").strip().lower()
    if value not in MODES:
        raise ValueError(f"plots={value!r}: choose one of {', '.join(MODES)}")
    return value


def _wait_s() -> float:
    try:
        return float(os.environ.get("FTKIT_PLOTS_WAIT", "6"))
    except ValueError:
        return 6.0


class Plot(widgets.VBox):
    """One ftkit plot: a ``FigureWidget`` where the frontend renders it, else a PNG drawn by matplotlib.

    It stands in for the figure: ``data``, ``layout``, ``batch_update`` and the rest reach the figure
    behind it (``.figure``), so callers build and update plots the same way on both paths. ``kind`` is
    the path in use. In ``auto`` mode the plot starts as a ``FigureWidget`` and turns static by itself
    when its view has not reported back ``wait`` seconds after the cell that made it finished (or
    after it was made, outside a cell), unless some FigureWidget in this kernel already did. Outside
    a Jupyter kernel (scripts, tests) nothing is shown, so ``auto`` keeps the FigureWidget. The
    static path redraws at most every ``interval`` seconds (a trailing redraw shows the last
    points); each update is one PNG of bounded size, whatever the run's length.
    """

    def __init__(self, fig: go.Figure, plots: Optional[str] = None, *, wait: Optional[float] = None,
                 interval: float = 2.0, width: int = 960):
        super().__init__(layout=_PlotLayout(self, width="100%"))
        self.add_class("ftkit-plot")
        self.mode = plots_mode(plots)
        self.interval = interval
        self.width = width
        self.sent = 0  # bytes of images sent (the FigureWidget path is counted by ``Meter``)
        self.images = 0
        self.reported = False
        self._lock = threading.RLock()
        self._last_draw = 0.0
        self._timer: Optional[threading.Timer] = None
        self._dirty = False
        self.image: Optional[widgets.Image] = None
        self.figure: Any = None
        if self.mode != "static":
            try:
                self.figure = go.FigureWidget(fig)
            except ImportError:  # anywidget missing: only the static path can draw
                self.figure = None
        if self.figure is None:
            self._go_static(go.Figure(fig))
            return
        self.kind = "figurewidget"
        self.children = [self.figure]
        self.figure.observe(self._reported, names=["_js2py_layoutDelta", "_js2py_traceDeltas"])
        if self.mode == "auto":
            _watch(self, _wait_s() if wait is None else wait)

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("__", "_repr_", "_ipython_")) or name in ("figure", "_trait_values") \
                or self.__dict__.get("figure") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["figure"], name)

    # ---- the path -----------------------------------------------------------------

    def _reported(self, change) -> None:
        if change["new"] is not None:
            self.reported = True
            _proven.set()

    def fall_back(self) -> None:
        """Switch to the static path now (what ``auto`` does when the FigureWidget never reports back)."""
        with self._lock:
            if self.kind == "static":
                return
            widget = self.figure
            self._go_static(go.Figure(widget))
            widget.close()

    def _timed_out(self) -> None:
        if not self.reported and not _proven.is_set() and self.kind == "figurewidget":
            self.fall_back()

    def _go_static(self, fig: go.Figure) -> None:
        self.kind = "static"
        self.figure = fig
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=f"{self.width}px",
                                                                       height="auto"))
        self.image.add_class("ftkit-static-plot")
        self.children = [self.image]
        self.draw()

    # ---- static drawing -----------------------------------------------------------

    def changed(self) -> None:
        """The figure changed: redraw the image now, or soon if one was drawn less than ``interval`` ago."""
        if self.kind != "static":
            return
        with self._lock:
            wait = self._last_draw + self.interval - time.monotonic()
            if wait <= 0:
                self.draw()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._trailing)
                self._timer.daemon = True
                self._timer.start()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self.draw()

    def draw(self) -> None:
        """Draw the image now."""
        from . import _static

        with self._lock:
            data = _static.png(self.figure, width=self.width)
            self._last_draw = time.monotonic()
            self.image.value = data
            self.sent += len(data)
            self.images += 1
            for meter in _meters(self):
                meter._pending += len(data)
                meter.total += len(data)
                meter.messages += 1


class _PlotLayout(widgets.Layout):
    """The plot's CSS layout, through which ``plot.layout["xaxis2"]`` and ``plot.layout.annotations`` also
    reach the figure's layout, as they would on a ``FigureWidget`` (the CSS traits keep their names)."""

    def __init__(self, plot: "Plot", **kwargs):
        super().__init__(**kwargs)
        self.__dict__["_plot_ref"] = plot

    def _figure_layout(self):
        figure = self.__dict__["_plot_ref"].__dict__.get("figure")
        if figure is None:
            raise AttributeError("layout")
        return figure.layout

    def __getitem__(self, key):
        return self._figure_layout()[key]

    def __setitem__(self, key, value):
        self._figure_layout()[key] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._figure_layout(), name)


def _meters(plot: Plot) -> list:
    return [m for m in plot.__dict__.get("_meters", [])]


_waiting: list = []  # (plot, wait) made during the running cell
_hooked = False


def _watch(plot: Plot, wait: float) -> None:
    """Start ``plot``'s wait once it can have been shown: after the running cell, or now."""
    global _hooked
    shell = _shell()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:  # no frontend to show it (a script, a test): nothing to wait for
        return
    try:
        parent = kernel.get_parent() or {}
        in_cell = parent.get("header", {}).get("msg_type") == "execute_request" \
            and threading.current_thread() is threading.main_thread()
    except Exception:
        in_cell = False
    if in_cell:
        if not _hooked:
            shell.events.register("post_run_cell", _cell_done)
            _hooked = True
        _waiting.append((plot, wait))
        return
    _start(plot, wait)


def _start(plot: Plot, wait: float) -> None:
    timer = threading.Timer(wait, plot._timed_out)
    timer.daemon = True
    timer.start()


def _cell_done(*_: Any) -> None:
    while _waiting:
        _start(*_waiting.pop())


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def figure_widget(fig: go.Figure, plots: Optional[str] = None) -> Plot:
    """The plot of ``fig`` on the path ``plots`` picks (see ``Plot``)."""
    return Plot(fig, plots)
