"""A plotly figure drawn as a PNG by matplotlib, for frontends that cannot render ``FigureWidget``.

Only what ftkit's plots use is translated: scatter traces (lines, markers, dash, opacity), bars,
subplot domains, axis titles and types, subplot titles (paper annotations) and the legend.
matplotlib is imported on first use, with its non-interactive Agg canvas (no pyplot, no GUI).
A ``Canvas`` keeps one matplotlib figure per plot and, while the plot's shape stays the same, only
moves the points of its line artists: building axes, ticks and text anew on every redraw is what
makes a redraw slow.
"""
from __future__ import annotations

import io
from typing import Any, Optional

DASHES = {"dot": ":", "dash": "--", "dashdot": "-.", "longdash": "--", "solid": "-", None: "-"}


def _domain(axis: Any) -> tuple[float, float]:
    domain = getattr(axis, "domain", None)
    return tuple(domain) if domain else (0.0, 1.0)


def _text(title: Any) -> str:
    return (getattr(title, "text", None) or "") if title is not None else ""


def _points(trace: Any) -> tuple[list, list]:
    x = list(trace.x) if trace.x is not None else []
    y = list(trace.y) if trace.y is not None else []
    return x, y


def _shape(fig: Any, width: int) -> tuple:
    """What decides the figure's artists; when it changes, the figure is built again."""
    layout = fig.layout
    traces = tuple((t.type, t.xaxis, t.yaxis, getattr(t, "mode", None), t.name, t.showlegend,
                    t.type == "bar" or min(len(t.x) if t.x is not None else 0, 2)) for t in fig.data)
    notes = tuple((n.text, n.x, n.y) for n in layout.annotations or ())
    return (int(layout.width or width), int(layout.height or 450), traces, notes, layout.showlegend)


def _fit(ax: Any) -> None:
    """Axes fitted to their points; axes with none show 0-1, as the FigureWidget path's do."""
    if ax.lines or ax.patches:
        ax.relim()
        ax.autoscale_view()
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)


class Canvas:
    """One matplotlib figure that redraws a plotly figure of unchanged shape by updating its artists."""

    def __init__(self, dpi: int = 100):
        self.dpi = dpi
        self.shape: Optional[tuple] = None
        self.builds = 0  # figures built (a figure of unchanged shape is only updated)
        self._figure: Any = None
        self._axes: dict = {}  # (xref, yref) -> (axes, xaxis key, yaxis key)
        self._lines: list = []  # (trace index, [line artists])

    def png(self, fig: Any, width: int = 960) -> bytes:
        """The figure as PNG bytes, ``width`` px wide (the layout's own width if it sets one)."""
        shape = _shape(fig, width)
        if shape != self.shape or any(t.type == "bar" for t in fig.data):
            self._build(fig, width)
            self.shape = shape
        else:
            self._update(fig)
        buffer = io.BytesIO()
        self._figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _update(self, fig: Any) -> None:
        for index, artists in self._lines:
            x, y = _points(fig.data[index])
            for artist in artists:
                artist.set_data(x, y)
        for ax, xkey, ykey in self._axes.values():
            self._label(ax, fig.layout[xkey], fig.layout[ykey])
            _fit(ax)

    @staticmethod
    def _label(ax: Any, xaxis: Any, yaxis: Any) -> None:
        xlabel, ylabel = _text(xaxis.title), _text(yaxis.title)
        if ax.get_xlabel() != xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
        if ax.get_ylabel() != ylabel:
            ax.set_ylabel(ylabel, fontsize=8)
        scale = "log" if yaxis.type == "log" else "linear"
        if ax.get_yscale() != scale:
            ax.set_yscale(scale)

    def _build(self, fig: Any, width: int) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        self.builds += 1
        layout = fig.layout
        w = int(layout.width or width)
        h = int(layout.height or 450)
        margin = layout.margin
        left, right = (margin.l if margin.l is not None else 80), (margin.r if margin.r is not None else 80)
        top, bottom = (margin.t if margin.t is not None else 100), (margin.b if margin.b is not None else 80)
        left, bottom, top = max(left, 56), max(bottom, 56), max(top, 30)  # room for matplotlib's tick labels
        out = Figure(figsize=(w / self.dpi, h / self.dpi), dpi=self.dpi)
        FigureCanvasAgg(out)
        self._figure, self._axes, self._lines = out, {}, []

        def paper(x: float, y: float) -> tuple[float, float]:
            return (left + x * (w - left - right)) / w, (bottom + y * (h - top - bottom)) / h

        legend: dict[str, Any] = {}
        for index, trace in enumerate(fig.data):
            xref, yref = trace.xaxis or "x", trace.yaxis or "y"
            key = (xref, yref)
            if key not in self._axes:
                xkey, ykey = xref.replace("x", "xaxis", 1), yref.replace("y", "yaxis", 1)
                (x0, x1), (y0, y1) = _domain(layout[xkey]), _domain(layout[ykey])
                (fx0, fy0), (fx1, fy1) = paper(x0, y0), paper(x1, y1)
                ax = out.add_axes((fx0, fy0, max(fx1 - fx0, 0.01), max(fy1 - fy0, 0.01)))
                ax.tick_params(labelsize=7)
                ax.xaxis.set_major_locator(MaxNLocator(5))
                ax.yaxis.set_major_locator(MaxNLocator(5))
                ax.grid(True, color="#e5e5e5", linewidth=0.6)
                self._label(ax, layout[xkey], layout[ykey])
                self._axes[key] = (ax, xkey, ykey)
            ax = self._axes[key][0]
            x, y = _points(trace)
            name = trace.name or ""
            artist = None
            if trace.type == "bar":
                if not len(x) or not len(y):
                    continue
                color = getattr(trace.marker, "color", None)
                color = color if isinstance(color, str) else None
                if trace.orientation == "h":
                    ax.barh(y, x, color=color, label=name)
                else:
                    widths = trace.width if isinstance(trace.width, (int, float)) else 0.8
                    ax.bar(x, y, width=widths, color=color, label=name)
                artist = ax.patches[-1] if ax.patches else None
            elif trace.type in ("scatter", "scattergl"):
                if not len(x):  # an empty curve draws nothing and has no legend entry (as in plotly)
                    continue
                mode = trace.mode or "lines"
                color = trace.line.color or getattr(trace.marker, "color", None)
                style = dict(color=color if isinstance(color, str) else None,
                             alpha=trace.opacity if trace.opacity is not None else 1.0)
                artists = []
                if "lines" in mode:
                    (line,) = ax.plot(x, y, linewidth=(trace.line.width or 2) * 0.75,
                                      linestyle=DASHES.get(trace.line.dash, "-"), **style)
                    artists.append(line)
                if "markers" in mode or len(x) == 1:  # a lone point has no line to show it
                    (dots,) = ax.plot(x, y, linestyle="none", marker="o", markersize=3, **style)
                    artists.append(dots)
                self._lines.append((index, artists))
                artist = artists[0]
            if artist is not None and trace.showlegend is not False and name and name not in legend:
                legend[name] = artist
        for ax, _, _ in self._axes.values():
            _fit(ax)
        for note in layout.annotations or ():
            if note.xref == "paper" and note.yref == "paper" and note.text:
                fx, fy = paper(note.x or 0, note.y or 0)
                out.text(fx, fy + 4 / h, note.text, ha="center", va="bottom", fontsize=9)
        if legend and layout.showlegend is not False:
            out.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(len(legend), 5),
                       fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))


def png(fig: Any, width: int = 960, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, drawn once (a live plot keeps a ``Canvas`` instead)."""
    return Canvas(dpi).png(fig, width)
