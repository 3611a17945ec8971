"""``Plot``: one ftkit plot on whichever path the frontend can draw (FigureWidget or a static PNG).

The curves on it are ``_stream.Stream``s; which path a plot takes is ``_paths``'s job.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Optional

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ._paths import MODES, plots_mode, proven, set_plots, using, wait_s, watch  # noqa: F401
from ._stream import PALETTE, Ema, Stream, add_stream, push, tidy  # noqa: F401  (the plot API in one place)

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
        self.canvas: Any = None  # the static path's one matplotlib figure, made on its first draw
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
            watch(self, wait_s() if wait is None else wait)

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("__", "_repr_", "_ipython_")) or name in ("figure", "_trait_values") \
                or self.__dict__.get("figure") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["figure"], name)

    # ---- the path -----------------------------------------------------------------

    def _reported(self, change) -> None:
        if change["new"] is None:
            return
        first, self.reported = not self.reported, True
        proven.set()
        if first:
            self.catch_up()

    def catch_up(self) -> None:
        """Send the figure as it is now to the views: every trace's points, the layout, autosize.

        A ``FigureWidget`` view draws from the state the widget had when it was made (plotly refreshes
        it only when the figure itself is displayed, not as a child of a box) and then applies the
        updates it hears. Updates sent before it rendered (the backlog of a run, the first autorange,
        while the frontend was still loading plotly) never reach it: a view that renders late would
        stay blank, or stuck on its empty 0-1 axes. Sent once, when the first view reports back (and
        by ``fit_width`` callers on demand), it costs one full figure; the view is on the page by then,
        so ``autosize`` also makes it take its box's width.
        """
        fig = self.figure
        if self.kind != "figurewidget" or not hasattr(fig, "_send_update_msg"):
            return
        with self._lock:
            traces = list(range(len(fig.data)))
            style = {key: [fig.data[i][key] for i in traces] for key in ("x", "y")}
            layout = {k: v for k, v in fig.layout.to_plotly_json().items() if k != "template"}
            layout["autosize"] = True
            fig._send_update_msg(style, layout, traces)

    def fall_back(self) -> None:
        """Switch to the static path now (what ``auto`` does when the FigureWidget never reports back)."""
        with self._lock:
            if self.kind == "static":
                return
            widget = self.figure
            self._go_static(go.Figure(widget))
            widget.close()

    def _timed_out(self) -> None:
        if not self.reported and not proven.is_set() and self.kind == "figurewidget":
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
            if self.canvas is None:
                self.canvas = _static.Canvas()
            data = self.canvas.png(self.figure, width=self.width)
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


def _meters(plot: Any) -> list:
    return [m for m in plot.__dict__.get("_meters", [])]


def figure_widget(fig: go.Figure, plots: Optional[str] = None) -> Plot:
    """The plot of ``fig`` on the path ``plots`` picks (see ``Plot``)."""
    return Plot(fig, plots)
