"""Plots in a JupyterLab page that cannot load anywidget (as in VS Code's renderer or offline pages).

The anywidget lab extension is disabled for this server, so plotly's ``FigureWidget`` view fails
to load ("No version of module anywidget is registered"). With ``plots="auto"`` (the default) the
dashboard's plot must turn into a static image by itself, grow while the run trains, and Stop
must still work.
"""
from __future__ import annotations

import pytest
from conftest import recorded_page, serve_lab
from lab import app_cell, drive_app, open_and_run

pytestmark = pytest.mark.browser


def test_without_anywidget_the_dashboard_falls_back_to_an_image_that_grows_and_stop_works(browser, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("lab-no-anywidget"), disabled_extensions=("anywidget",)) as lab, \
            recorded_page(browser) as page:
        open_and_run(page, lab, lab.write_notebook("fallback.ipynb", [app_cell(wait=3)]))
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        drive_app(page, "jupyterlab-without-anywidget", static=True)
