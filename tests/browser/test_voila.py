"""The App served by Voila (code hidden, widgets only): the form renders, Start trains, the loss plot
(FigureWidget, through the anywidget lab extension Voila loads) gains points, Stop works."""
from __future__ import annotations

import pytest
from conftest import recorded_page, serve_lab
from lab import app_cell, drive_app

pytestmark = pytest.mark.browser
pytest.importorskip("voila")


def test_voila_form_start_plot_grows_stop(browser, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("voila"), app="voila") as server, recorded_page(browser) as page:
        name = server.write_notebook("app.ipynb", [app_cell()])
        # Voila runs the notebook before the page's load event: that takes 20-40 s on a busy 2-core machine
        page.goto(f"{server.url}/voila/render/{name}?token={server.token}", timeout=180_000)
        drive_app(page, "voila", static=False)
        assert page.locator(".jp-InputArea, .jp-CodeMirrorEditor").count() == 0, "Voila showed the code"
