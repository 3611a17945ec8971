"""A plotly figure drawn as a PNG by matplotlib, for frontends that cannot render ``FigureWidget``.

Only what ftkit's plots use is translated: scatter traces (lines, markers, dash, opacity), bars,
subplot domains, axis titles and types, subplot titles (paper annotations) and the legend.
matplotlib is imported on first use, with its non-interactive Agg canvas (no pyplot, no GUI).
"""
from __future__ import annotations

import io
from typing import Any

DASHES = {"dot": ":", "dash": "--", "dashdot": "-.", "longdash": "--", "solid": "-", None: "-"}


def _domain(axis: Any) -> tuple[float, float]:
    domain = getattr(axis, "domain", None)
    return tuple(domain) if domain else (0.0, 1.0)


def _text(title: Any) -> str:
    return (getattr(title, "text", None) or "") if title is not None else ""


def png(fig: Any, width: int = 960, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, ``width`` px wide (the layout's own width if it sets one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    layout = fig.layout
    w = int(layout.width or width)
    h = int(layout.height or 450)
    margin = layout.margin
    left, right = (margin.l if margin.l is not None else 80), (margin.r if margin.r is not None else 80)
    top, bottom = (margin.t if margin.t is not None else 100), (margin.b if margin.b is not None else 80)
    left, bottom, top = max(left, 56), max(bottom, 56), max(top, 30)  # room for matplotlib's tick labels
    out = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(out)

    def paper(x: float, y: float) -> tuple[float, float]:
        return (left + x * (w - left - right)) / w, (bottom + y * (h - top - bottom)) / h

    axes: dict[tuple[str, str], Any] = {}
    legend: dict[str, Any] = {}
    for trace in fig.data:
        xref, yref = trace.xaxis or "x", trace.yaxis or "y"
        key = (xref, yref)
        if key not in axes:
            xaxis, yaxis = layout[xref.replace("x", "xaxis", 1)], layout[yref.replace("y", "yaxis", 1)]
            (x0, x1), (y0, y1) = _domain(xaxis), _domain(yaxis)
            (fx0, fy0), (fx1, fy1) = paper(x0, y0), paper(x1, y1)
            ax = out.add_axes((fx0, fy0, max(fx1 - fx0, 0.01), max(fy1 - fy0, 0.01)))
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.grid(True, color="#e5e5e5", linewidth=0.6)
            ax.set_xlabel(_text(xaxis.title), fontsize=8)
            ax.set_ylabel(_text(yaxis.title), fontsize=8)
            if yaxis.type == "log":
                ax.set_yscale("log")
            axes[key] = ax
        ax = axes[key]
        x = list(trace.x) if trace.x is not None else []
        y = list(trace.y) if trace.y is not None else []
        if not len(x) or not len(y):
            continue
        name = trace.name or ""
        if trace.type == "bar":
            color = getattr(trace.marker, "color", None)
            color = color if isinstance(color, str) else None
            if trace.orientation == "h":
                ax.barh(y, x, color=color, label=name)
            else:
                widths = trace.width if isinstance(trace.width, (int, float)) else 0.8
                ax.bar(x, y, width=widths, color=color, label=name)
            artist = ax.patches[-1] if ax.patches else None
        elif trace.type in ("scatter", "scattergl"):
            mode = trace.mode or "lines"
            color = trace.line.color or getattr(trace.marker, "color", None)
            style = dict(color=color if isinstance(color, str) else None,
                         alpha=trace.opacity if trace.opacity is not None else 1.0)
            artist = None
            if "lines" in mode:
                (artist,) = ax.plot(x, y, linewidth=(trace.line.width or 2) * 0.75,
                                    linestyle=DASHES.get(trace.line.dash, "-"), **style)
            if "markers" in mode or len(x) == 1:  # a lone point has no line to show it
                (dots,) = ax.plot(x, y, linestyle="none", marker="o", markersize=3, **style)
                artist = artist or dots
        else:
            continue
        if artist is not None and trace.showlegend is not False and name and name not in legend:
            legend[name] = artist
    for note in layout.annotations or ():
        if note.xref == "paper" and note.yref == "paper" and note.text:
            fx, fy = paper(note.x or 0, note.y or 0)
            out.text(fx, fy + 4 / h, note.text, ha="center", va="bottom", fontsize=9)
    if legend and layout.showlegend is not False:
        out.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(len(legend), 5),
                   fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
    buffer = io.BytesIO()
    out.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
