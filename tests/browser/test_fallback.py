"""Plots in a JupyterLab page that cannot load anywidget (as in VS Code's renderer or offline pages).

The anywidget lab extension is disabled for this server, so plotly's ``FigureWidget`` view fails
to load ("No version of module anywidget is registered"). With ``plots="auto"`` (the default) the
dashboard's plot must turn into a static image by itself, grow while the run trains, and Stop
must still work. One server and one kernel for the whole module.
"""
from __future__ import annotations

import time

import pytest
from conftest import serve_lab
from lab import open_and_run, shot
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NOTEBOOK = """\
import os
os.environ["FTKIT_PLOTS_WAIT"] = "3"
from ftkit.config import RunConfig
from ftkit.widgets import App

config = RunConfig.preset("demo").update({
    "training.max_steps": 400, "training.batch_size": 4, "training.max_seq_length": 48,
    "training.logging_steps": 1, "training.eval_steps": 0, "data.max_eval_samples": 16,
})
app = App(config=config)
app
"""

# Every 50 ms: when the static plot's image changes (each change is a redraw with the newest points).
RECORDER = """
(() => {
  const rec = window.__ftkitImages = {changes: []};
  let last = null;
  setInterval(() => {
    const img = document.querySelector('.ftkit-dashboard img.ftkit-static-plot');
    if (img && img.src && img.src !== last) { last = img.src; rec.changes.push(Date.now()); }
  }, 50);
})();
"""


@pytest.fixture(scope="module")
def page_without_anywidget(browser, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("lab-no-anywidget"), disabled_extensions=("anywidget",)) as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.add_init_script(RECORDER)
        open_and_run(page, lab, lab.write_notebook("fallback.ipynb", [NOTEBOOK]))
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.locator(".ftkit-form").wait_for(timeout=120_000)
        try:
            yield page
        finally:
            context.close()


def test_without_anywidget_the_dashboard_falls_back_to_an_image_that_grows_and_stop_works(page_without_anywidget):
    page = page_without_anywidget
    expect(page.locator(".ftkit-start")).to_be_enabled(timeout=60_000)
    started = time.time()
    page.locator(".ftkit-start").click()
    image = page.locator(".ftkit-dashboard img.ftkit-static-plot")
    expect(image).to_be_visible(timeout=90_000)  # the FigureWidget never reported back: it turned static
    page.wait_for_function("() => window.__ftkitImages.changes.length >= 1", timeout=90_000)
    first = page.evaluate("() => window.__ftkitImages.changes[0]") / 1000 - started
    page.wait_for_function("() => window.__ftkitImages.changes.length >= 3", timeout=90_000)  # it redraws
    assert page.locator(".ftkit-dashboard .js-plotly-plot").count() == 0
    status = page.locator(".ftkit-dashboard .ftkit-status-text")
    expect(status).to_have_text("running", timeout=60_000)
    time.sleep(max(0.0, started + 30 - time.time()))
    redraws = page.evaluate("() => window.__ftkitImages.changes.length")
    image.evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(page, "fallback-lab-no-anywidget-running")
    page.locator(".ftkit-dashboard .ftkit-stop").click()
    expect(status).to_have_text("stopped", timeout=90_000)
    page.wait_for_timeout(3_000)  # the trailing redraw with the last points
    image.evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(page, "fallback-lab-no-anywidget-stopped")
    print(f"\njupyterlab without anywidget: first image {first:.1f} s after Start; {redraws} redraws after 30 s")
