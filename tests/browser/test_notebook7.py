"""The App in Jupyter Notebook 7 (the ``notebook`` package): the form renders, Start trains, the loss
plot (FigureWidget) gains points, Stop works. One server, one kernel, one test."""
from __future__ import annotations

import pytest
from conftest import recorded_page, serve_lab
from lab import app_cell, drive_app

pytestmark = pytest.mark.browser
pytest.importorskip("notebook")


def test_notebook7_form_start_plot_grows_stop(browser, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("nb7"), app="notebook") as server, recorded_page(browser) as page:
        name = server.write_notebook("nb7.ipynb", [app_cell()])
        page.goto(f"{server.url}/notebooks/{name}?token={server.token}")
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; }", timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        drive_app(page, "notebook7", static=False)
