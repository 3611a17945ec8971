"""The App in Jupyter Notebook 7 (the ``notebook`` package): the form renders, Start trains, the loss
plot (FigureWidget) gains points, Stop works. One server, one kernel, one test."""
from __future__ import annotations

import time

import pytest
from conftest import serve_lab
from lab import shot
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
pytest.importorskip("notebook")

NOTEBOOK = """\
from ftkit.config import RunConfig
from ftkit.widgets import App

config = RunConfig.preset("demo").update({
    "training.max_steps": 400, "training.batch_size": 4, "training.max_seq_length": 48,
    "training.logging_steps": 1, "training.eval_steps": 0, "data.max_eval_samples": 16,
})
app = App(config=config)
app
"""

# Every 50 ms: the points of the dashboard's "train loss" curve, and when that number changes.
RECORDER = """
(() => {
  const rec = window.__ftkitPoints = {changes: []};
  let last = -1;
  setInterval(() => {
    const el = document.querySelector('.ftkit-dashboard .js-plotly-plot');
    if (!el) return;
    let points = 0;
    for (const trace of (el.data || [])) if (trace.name === 'train loss' && trace.x) points += trace.x.length;
    if (points !== last) { last = points; rec.changes.push({t: Date.now(), points}); }
  }, 50);
})();
"""


def test_notebook7_form_start_plot_grows_stop(browser, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("nb7"), app="notebook") as server:
        name = server.write_notebook("nb7.ipynb", [NOTEBOOK])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.add_init_script(RECORDER)
        try:
            page.goto(f"{server.url}/notebooks/{name}?token={server.token}")
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            expect(page.locator(".ftkit-form")).to_be_visible(timeout=120_000)
            expect(page.locator(".ftkit-start")).to_be_enabled(timeout=60_000)
            shot(page, "notebook7-form")
            started = time.time()
            page.locator(".ftkit-start").click()
            page.wait_for_function("() => window.__ftkitPoints.changes.some(c => c.points > 0)", timeout=120_000)
            first = page.evaluate("() => window.__ftkitPoints.changes.find(c => c.points > 0).t") / 1000 - started
            time.sleep(max(0.0, started + 30 - time.time()))
            points = page.evaluate("() => window.__ftkitPoints.changes.at(-1).points")
            assert points >= 5, points
            page.locator(".ftkit-dashboard .js-plotly-plot").evaluate("e => e.scrollIntoView({block: 'start'})")
            shot(page, "notebook7-running")
            page.locator(".ftkit-dashboard .ftkit-stop").click()
            expect(page.locator(".ftkit-dashboard .ftkit-status-text")).to_have_text("stopped", timeout=90_000)
            assert page.locator(".ftkit-dashboard img.ftkit-static-plot").count() == 0  # FigureWidget kept
            print(f"\nnotebook 7: first point {first:.1f} s after Start; {points} points after 30 s")
        finally:
            context.close()
