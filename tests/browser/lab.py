"""Helpers for browser tests: a server handle, the App notebook, one way to drive it, screenshots, timings."""
from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

import nbformat
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CURRENT: list = []  # the test item running now (set by conftest), whose report carries its figures
WATCH_S = 30  # how long after Start the plot's points are counted

# The App with the demo preset, long enough to still be training when its plot is counted and stopped.
APP_CELL = """\
import os
os.environ["FTKIT_PLOTS_WAIT"] = "{wait}"
from ftkit.config import RunConfig
from ftkit.widgets import App

config = RunConfig.preset("demo").update({{
    "training.max_steps": 3000, "training.batch_size": 4, "training.max_seq_length": 48,
    "training.logging_steps": 1, "training.eval_steps": 0, "data.max_eval_samples": 16,
}})
app = App(config=config)
app
"""

# Every 50 ms, from inside the page (Python-side sampling stalls on screenshots): when Start was
# clicked, the points of the first dashboard's "train loss" curve (FigureWidget path) and each change
# of its static image (the fallback path: one change is one redraw with the newest points).
RECORDER = """
(() => {
  const rec = window.__ftkit = {started: null, points: [], images: []};
  document.addEventListener('click', (e) => {
    if (rec.started === null && e.target.closest && e.target.closest('.ftkit-start')) rec.started = Date.now();
  }, true);
  let points = -1, image = null;
  setInterval(() => {
    const plot = document.querySelector('.ftkit-dashboard .js-plotly-plot');
    if (plot) {
      let n = 0;
      for (const trace of (plot.data || [])) if (trace.name === 'train loss' && trace.x) n += trace.x.length;
      if (n !== points) { points = n; rec.points.push({t: Date.now(), n}); }
    }
    const img = document.querySelector('.ftkit-dashboard img.ftkit-static-plot');
    if (img && img.src && img.src !== image) { image = img.src; rec.images.push(Date.now()); }
  }, 50);
})();
"""


class Lab:
    def __init__(self, root: Path, port: int, token: str, runs: Path, log: Path | None = None):
        self.root, self.port, self.token, self.runs, self.log = root, port, token, runs, log
        self.url = f"http://127.0.0.1:{port}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for a failure message."""
        return self.log.read_text(errors="replace")[-chars:] if self.log and self.log.exists() else ""

    def shutdown_kernels(self) -> int:
        """Shut down every kernel of this server (a test's kernels must not load the next test's machine)."""
        url = f"{self.url}/api/kernels?token={self.token}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            request = urllib.request.Request(f"{self.url}/api/kernels/{kernel['id']}?token={self.token}",
                                             method="DELETE")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=30).close()
        return len(kernels)

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name


def app_cell(wait: float = 60) -> str:
    """The App cell; ``wait``: seconds a FigureWidget has to report back before ``auto`` turns static
    (long by default: on a busy 2-core machine plotly's bundle can take longer than the usual 6 s)."""
    return APP_CELL.format(wait=wait)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def record_timing(frontend: str, first_s: float, count: int, what: str = "points") -> str:
    """One line in the format every frontend test prints, so the figures can be pasted side by side."""
    line = f"frontend {frontend}: first {what[:-1]} {first_s:.1f} s after Start; {count} {what} after {WATCH_S} s"
    if CURRENT:  # printed with the run's other figures (tests/conftest.py)
        CURRENT[-1].user_properties.append(("figure", line))
    print("\n" + line)
    return line


def open_and_run(page, lab: Lab, notebook: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, and run all cells.

    ``reset`` drops the layout an earlier test left, so no other notebook can be
    the current one when the cells are run.
    """
    page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")
    page.wait_for_function(
        "(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.context && w.context.path === path && w.sessionContext"
        "   && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }",
        arg=notebook,
        timeout=120_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:  # the kernel takes the first cell within seconds; a command the page dropped is sent again
        page.wait_for_function(STARTED, timeout=30_000)
    except PlaywrightTimeout:
        print(f"\n{notebook}: no cell started 30 s after run-all; running all cells again")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


# The current notebook's first cell has run or is running (its kernel busy), in JupyterLab.
STARTED = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cell = w && w.content && w.content.widgets[0];
  const kernel = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!cell && (cell.model.executionCount !== null || (!!kernel && kernel.status === 'busy'));
}"""

# What the current notebook shows, for a failure message: kernel status, each cell's count and outputs.
NOTEBOOK_STATE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content) return 'no notebook is current';
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.map((c, i) => {
    const outputs = c.model.outputs ? c.model.outputs.toJSON() : [];
    return `cell ${i} [${c.model.executionCount}]: ` + JSON.stringify(outputs).slice(0, 2000);
  });
  return `kernel ${kernel ? kernel.status : 'none'}; ` + cells.join('; ');
}"""


def wait_for_app(page, selector: str = ".ftkit-form", timeout_ms: int = 120_000) -> None:
    """Wait for the App's widget in a JupyterLab notebook; a timeout says what the notebook shows
    (a traceback in the cell, a kernel still busy) and leaves a screenshot."""
    try:
        page.locator(selector).wait_for(timeout=timeout_ms)
    except PlaywrightTimeout:
        shot(page, "app-did-not-render")
        state = "unreadable"
        with contextlib.suppress(Exception):
            state = page.evaluate(NOTEBOOK_STATE)
        raise AssertionError(f"{selector} not shown after {timeout_ms / 1000:.0f} s; the notebook: {state}") from None


def to_top(locator) -> None:
    """Scroll ``locator`` to the top of the view for a screenshot; a page too busy to answer keeps its place."""
    with contextlib.suppress(PlaywrightTimeout):
        locator.evaluate("e => e.scrollIntoView({block: 'start'})", timeout=10_000)


def drive_app(page, frontend: str, *, static: bool) -> dict:
    """The App's check in any frontend: the form renders, Start trains, the loss plot gains points
    (``static``: as redraws of the fallback image, which must appear by itself), Stop stops the run.

    The page must carry ``RECORDER``. Returns the figures it also prints through ``record_timing``.
    """
    expect(page.locator(".ftkit-form")).to_be_visible(timeout=120_000)
    expect(page.locator(".ftkit-start")).to_be_enabled(timeout=60_000)
    shot(page, f"{frontend}-form")
    page.locator(".ftkit-start").click()
    started = page.evaluate("() => window.__ftkit.started")
    assert started, "the recorder saw no click on Start"
    dashboard = page.locator(".ftkit-dashboard")
    expect(dashboard).to_be_visible(timeout=60_000)
    if static:
        expect(dashboard.locator("img.ftkit-static-plot")).to_be_visible(timeout=90_000)
        page.wait_for_function("() => window.__ftkit.images.length >= 1", timeout=90_000)
        first = page.evaluate("() => window.__ftkit.images[0]")
    else:
        try:
            page.wait_for_function("() => window.__ftkit.points.some(p => p.n > 0)", timeout=120_000)
        except PlaywrightTimeout:
            turned = dashboard.locator("img.ftkit-static-plot").count()
            raise AssertionError("the loss plot got no points" + (
                ": it turned static (its FigureWidget view did not report back)" if turned else "")) from None
        first = page.evaluate("() => window.__ftkit.points.find(p => p.n > 0).t")
    status = dashboard.locator(".ftkit-status-text")
    expect(status).to_have_text("running", timeout=60_000)
    # It grows (waited for, however busy the machine), and the figure for the report is what the
    # recorder had seen 30 s after Start.
    if static:
        page.wait_for_function("() => window.__ftkit.images.length >= 3", timeout=180_000)
        assert dashboard.locator(".js-plotly-plot").count() == 0, "a FigureWidget is still on the page"
    else:
        page.wait_for_function("() => window.__ftkit.points.some(p => p.n >= 5)", timeout=180_000)
        assert dashboard.locator("img.ftkit-static-plot").count() == 0, "the FigureWidget turned static"
    time.sleep(max(0.0, started / 1000 + WATCH_S - time.time()))  # no wait-for fits "after 30 s"
    at = started + WATCH_S * 1000
    count = page.evaluate(
        f"() => window.__ftkit.images.filter(t => t <= {at}).length" if static else
        f"() => {{ const seen = window.__ftkit.points.filter(p => p.t <= {at}); return seen.length ? seen.at(-1).n : 0; }}")
    plot = dashboard.locator("img.ftkit-static-plot" if static else ".js-plotly-plot").first
    to_top(plot)
    shot(page, f"{frontend}-running")
    stop = dashboard.locator(".ftkit-stop")
    expect(stop).to_be_enabled()
    # The widget listens for the click event; a busy 2-core page can keep Playwright's "stable" check
    # (two animation frames with the same box) from passing while six plots redraw.
    stop.dispatch_event("click")
    drawn = page.evaluate("() => window.__ftkit.images.length")
    expect(status).to_have_text("stopped", timeout=90_000)
    if static:  # the trailing redraw with the last points, for the screenshot (it may have come already)
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(f"() => window.__ftkit.images.length > {drawn}", timeout=10_000)
    to_top(plot)
    shot(page, f"{frontend}-stopped")
    first_s = (first - started) / 1000
    record_timing(frontend, first_s, count, "redraws" if static else "points")
    return {"first_s": first_s, "count": count}
