"""The App in a page of our own driven by ``@jupyter-widgets/html-manager`` on a live kernel, the way
VS Code's notebook renderer shows widgets: stock ipywidgets are built in, and third-party widget
modules load only from the kernel environment's ``share/jupyter/nbextensions/<module>/index.js``.

Run twice: with anywidget's nbextension there (plotly's ``FigureWidget`` renders and gains points),
and with it missing (the view cannot load, and ``plots="auto"`` turns the plot static by itself).
The page's bundle (``widget_page/``, npm) is built by ``setup.sh``. One kernel server for the module.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from conftest import free_port, recorded_page, serve_lab
from lab import app_cell, drive_app

pytestmark = pytest.mark.browser

PAGE = Path(__file__).parent / "widget_page" / "dist"
NBEXTENSIONS = Path(sys.prefix) / "share" / "jupyter" / "nbextensions"  # the kernel runs this interpreter


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_files(root: Path):
    """``root`` over HTTP on 127.0.0.1 (a thread; symlinks followed), stopped on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One origin for the page and the widget files; the kernel server accepts requests from it."""
    if not (PAGE / "page.js").exists():
        pytest.fail(f"{PAGE} is not built: run `npm ci && npm run build` in {PAGE.parent} (setup.sh does)")
    root = tmp_path_factory.mktemp("widget-site")
    (root / "page").symlink_to(PAGE)
    (root / "with-anywidget").symlink_to(NBEXTENSIONS)
    without = root / "without-anywidget"
    without.mkdir()
    for entry in NBEXTENSIONS.iterdir():
        if entry.name != "anywidget":
            (without / entry.name).symlink_to(entry)
    assert (NBEXTENSIONS / "anywidget" / "index.js").exists(), "anywidget installs no nbextension here"
    with serve_files(root) as url:
        yield url


@pytest.fixture(scope="module")
def kernels(site, tmp_path_factory):
    with serve_lab(tmp_path_factory.mktemp("kernels"), app="jupyter_server",
                   args=(f"--ServerApp.allow_origin={site}",)) as server:
        yield server


def open_page(page, site: str, kernels, widgets: str) -> list[str]:
    """Open the page on a new kernel; returns the page's console, which grows as the page runs."""
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    page.goto(f"{site}/page/index.html?server={kernels.url}&token={kernels.token}&widgets={site}/{widgets}")
    status = page.locator("#status")
    with contextlib.suppress(PlaywrightTimeout):  # a kernel's start on a busy machine; the assert says what
        status.filter(has_text="kernel ready").or_(status.filter(has_text="failed")).wait_for(timeout=120_000)
    assert status.inner_text() == "kernel ready", (status.inner_text(), console, kernels.log_tail())
    return console


@pytest.mark.parametrize("anywidget", [True, False], ids=["with-anywidget", "without-anywidget"])
def test_html_manager_page_form_start_plot_grows_stop(browser, site, kernels, anywidget):
    try:
        with recorded_page(browser) as page:
            open_page(page, site, kernels, "with-anywidget" if anywidget else "without-anywidget")
            page.evaluate("(code) => { window.ftkitPage.run(code); }", app_cell() if anywidget else app_cell(wait=3))
            drive_app(page, f"html-manager-{'with' if anywidget else 'without'}-anywidget", static=not anywidget)
            errors = page.locator(".error-output").all_inner_texts()
            assert not errors, errors
    finally:
        kernels.shutdown_kernels()  # the next page starts its own on a machine this one no longer loads
