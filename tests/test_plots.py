"""The two plot paths (FigureWidget, static PNG) and how ``auto`` picks between them."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

sys.path.insert(0, str(Path(__file__).parent))

from _fakes import FakeRun, training_events
from ftkit.config import RunConfig
from ftkit.widgets import Dashboard, set_plots
from ftkit.widgets._plot import Meter, Plot, add_stream, plots_mode, push, using

ROOT = Path(__file__).resolve().parents[1]


def figure():
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "learning rate"))
    fig.update_layout(height=300)
    return fig


def test_static_plot_is_a_png_in_a_stock_image_and_stands_in_for_the_figure():
    fig = figure()
    stream = add_stream(fig, "loss", row=1, col=1)
    plot = Plot(fig, "static", interval=0)
    meter = Meter(plot)
    assert plot.kind == "static" and isinstance(plot.children[0], widgets.Image)
    assert type(plot.children[0]).__module__.startswith("ipywidgets")  # no widget JavaScript of its own
    for i in range(50):
        stream.add(i, 1 / (i + 1))
    push(plot, [stream])
    assert plot.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert meter.take() == len(plot.image.value) > 0
    # the figure's API reaches the figure behind it, as on a FigureWidget
    assert plot.layout["xaxis2"].domain[0] > 0.5 and plot.layout.annotations[0].text == "loss"
    assert len(plot.data) == 1 and isinstance(go.Figure(plot.figure), go.Figure)


def test_static_redraws_are_throttled_with_a_trailing_redraw():
    fig = figure()
    stream = add_stream(fig, "loss", row=1, col=1)
    plot = Plot(fig, "static", interval=0.5)
    drawn = plot.images
    for i in range(20):
        stream.add(i, i)
        push(plot, [stream])
    assert plot.images <= drawn + 1  # at most one redraw inside the interval
    time.sleep(0.8)
    assert plot.images == drawn + 1 or plot.images == drawn + 2  # the trailing one shows the last points


def test_plots_setting_argument_then_set_plots_then_environment(monkeypatch):
    monkeypatch.delenv("FTKIT_PLOTS", raising=False)
    assert plots_mode() == "auto"
    monkeypatch.setenv("FTKIT_PLOTS", "static")
    assert plots_mode() == "static" and Plot(figure()).kind == "static"
    set_plots("figurewidget")
    try:
        assert plots_mode() == "figurewidget" and plots_mode("static") == "static"
        with using("static"):
            assert plots_mode() == "static"
        assert plots_mode() == "figurewidget"
    finally:
        set_plots(None)
    with pytest.raises(ValueError, match="auto, figurewidget, static"):
        plots_mode("svg")


def test_auto_keeps_the_figurewidget_once_its_view_reports_back():
    plot = Plot(figure(), "auto")
    assert plot.kind == "figurewidget"
    plot.figure._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": 0}  # what the view sends on render
    plot._timed_out()
    assert plot.kind == "figurewidget" and plot.reported
    silent = Plot(figure(), "auto")
    silent._timed_out()  # another FigureWidget in this kernel rendered: the frontend can draw them
    assert silent.kind == "figurewidget"


def test_fall_back_keeps_the_points_drawn_so_far():
    fig = figure()
    stream = add_stream(fig, "loss", row=1, col=1)
    plot = Plot(fig, "figurewidget")
    for i in range(30):
        stream.add(i, i)
    push(plot, [stream])
    widget = plot.figure
    plot.fall_back()
    assert plot.kind == "static" and plot.children == (plot.image,)
    assert list(plot.data[0].x) == list(widget.data[0].x) == list(range(30)) and plot.image.value


def test_a_curve_is_one_trace_that_holds_its_points_from_the_first_on():
    fig = figure()
    stream = add_stream(fig, "loss", row=1, col=1, max_points=40, tail_points=10)
    plot = Plot(fig, "figurewidget")
    assert len(plot.data) == 1
    stream.add(0, 1.0)
    push(plot, [stream])
    assert list(plot.data[0].x) == [0] and list(plot.data[0].y) == [1.0]
    for i in range(1, 500):
        stream.add(i, 1 / (i + 1))
        push(plot, [stream])
    x = list(plot.data[0].x)
    assert len(plot.data) == 1 and len(x) <= 40 + 10 and x == sorted(x)
    assert x[0] == 0 and x[-10:] == list(range(490, 500))  # decimated history, then the new tail whole


def test_dashboard_static_bytes_per_update_stay_bounded_over_10000_steps():
    run = FakeRun(RunConfig.preset("demo"))
    dash = Dashboard(run, interval=None, plots="static")
    dash.figure.interval = 0  # draw on every flush here; the throttle is tested above
    assert dash.figure.kind == "static"
    sizes = {}
    for i, event in enumerate(training_events(10_000, eval_every=500, cuda=True)):
        run.emit(event)
        step = event.get("step")
        if step in (10, 5_000, 10_000) and step not in sizes:
            dash.flush()
            sizes[step] = dash.stats["bytes_by_step"][-1][1]
    assert set(sizes) == {10, 5_000, 10_000}
    assert all(0 < b < 150_000 for b in sizes.values()), sizes
    assert sizes[10_000] < 1.5 * sizes[5_000], sizes
    print(f"\nstatic bytes per update: {sizes}")


NOTEBOOK = [
    "import os, time\nos.environ['FTKIT_PLOTS_WAIT'] = '1'\n"
    "from plotly.subplots import make_subplots\nfrom ftkit.widgets._plot import Plot\n"
    "plot = Plot(make_subplots(rows=1, cols=1))\nplot",
    "time.sleep(2.5)\nprint(plot.kind, type(plot.children[0]).__name__)",
]


def test_auto_falls_back_by_itself_in_a_kernel_whose_frontend_never_renders_it():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert out.strip() == "static Image", nb.cells[1].outputs


def test_static_redraws_reuse_one_matplotlib_figure_while_the_plot_keeps_its_shape():
    fig = figure()
    stream = add_stream(fig, "loss", row=1, col=1)
    add_stream(fig, "learning rate", row=1, col=2)  # no points yet
    plot = Plot(fig, "static", interval=0)
    stream.add(0, 1.0)
    stream.add(1, 0.5)
    push(plot, [stream])
    figure_before, builds = plot.canvas._figure, plot.canvas.builds
    first = plot.image.value
    for i in range(2, 40):
        stream.add(i, 1 / (i + 1))
        push(plot, [stream])
    assert plot.canvas.builds == builds and plot.canvas._figure is figure_before
    (line,) = plot.canvas._lines[0][1]
    assert list(line.get_xdata()) == list(range(40)) and plot.image.value != first  # the new points are drawn
    (drawn, _, _), (empty, _, _) = plot.canvas._axes.values()
    assert drawn.get_xlim()[1] >= 39 and drawn.get_ylim()[1] >= 1.0  # fitted to its points
    assert empty.get_xlim() == (0, 1) and empty.get_ylim() == (0, 1)  # no points: 0-1, not matplotlib's -0.05-0.05


def test_a_view_that_renders_after_the_updates_gets_the_whole_figure_when_it_reports_back():
    """A FigureWidget view draws from the widget's state at creation; updates sent before it rendered are lost
    to it. The first report of a view (what plotly's view sends once drawn) makes the plot send it all."""
    fig = figure()
    fig.update_xaxes(range=[0, 1], autorange=False)
    stream = add_stream(fig, "loss", row=1, col=1)
    plot = Plot(fig, "figurewidget")
    for i in range(30):
        stream.add(i, 1 / (i + 1))
    push(plot, [stream])
    plot.layout.xaxis.autorange = True  # sent now: a view not yet rendered misses both
    assert not list(plot.figure._widget_data[0].get("x", []))  # what a view rendering now would draw from
    sent = []
    plot.figure.observe(lambda change: sent.append(change["new"]) if change["new"] else None, "_py2js_update")
    plot.figure._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": plot.figure._last_layout_edit_id}
    assert len(sent) == 1
    (message,) = sent
    assert list(message["style_data"]["x"][0]) == list(range(30)) and message["style_traces"] == [0]
    assert message["layout_data"]["xaxis"]["autorange"] is True and message["layout_data"]["autosize"] is True
    plot.figure._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": plot.figure._last_layout_edit_id}
    assert len(sent) == 1  # once
