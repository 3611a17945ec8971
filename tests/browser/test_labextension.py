"""ftkit's JupyterLab extension in a real page: launcher item, runs panel, Stop, Dashboard, auth.

The runs come from a notebook run in the browser (a short demo run, then a long
one that the panel's Stop button ends); the panel polls the server extension
every 2 s, so every assertion waits on the page, not on Python.
"""
from __future__ import annotations

import json

import pytest
from lab import shot
from playwright.sync_api import expect

from ftkit.jupyter.template import quickstart

pytestmark = pytest.mark.browser

SHORT, LONG = "panel-short", "panel-long"
SETTINGS = {"training.batch_size": 4, "training.max_seq_length": 48, "training.logging_steps": 1,
            "training.eval_steps": 0, "data.max_eval_samples": 16}

RUNS_NOTEBOOK = [
    f"""\
from ftkit import Controller, RunConfig

settings = {SETTINGS!r}
controller = Controller()
short = controller.start(RunConfig.preset("demo").update({{**settings, "name": "{SHORT}", "training.max_steps": 60}}))
""",
    f"""\
short.wait()
long = controller.start(RunConfig.preset("demo").update({{**settings, "name": "{LONG}", "training.max_steps": 100000}}))
""",
    "long.wait()",
]


def open_lab(page, lab, path: str = "") -> None:
    """JupyterLab with a fresh workspace (``reset``), optionally opening the notebook ``path``."""
    page.goto(f"{lab.url}/lab{'/tree/' + path if path else ''}?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp", timeout=120_000)
    page.evaluate("async () => { await window.jupyterapp.restored; }")  # the layout is in place
    assert page.evaluate("() => window.jupyterapp.commands.hasCommand('ftkit:new-notebook')")


def row(page, name: str):
    return page.locator(f".ftkit-runs-panel tr[data-run-id*='-{name}-']")


def wait_status(page, name: str, status: str, timeout: int = 180_000) -> None:
    page.wait_for_function(
        "([name, status]) => { const r = document.querySelector(`.ftkit-runs-panel tr[data-run-id*='-${name}-']`);"
        " return r && r.querySelector('.ftkit-run-status').dataset.status === status; }",
        arg=[name, status], timeout=timeout)


def test_launcher_item_creates_a_notebook_from_the_quickstart(page, lab):
    before = set(p.name for p in lab.root.glob("*.ipynb"))
    open_lab(page, lab)
    page.evaluate("() => window.jupyterapp.commands.execute('launcher:create')")
    section = page.locator(".jp-Launcher-section").filter(
        has=page.locator(".jp-Launcher-sectionTitle", has_text="Notebook"))
    card = section.locator(".jp-LauncherCard").filter(has_text="Fine-tuning notebook")
    expect(card).to_be_visible(timeout=30_000)
    shot(page, "labext-launcher")
    card.click()
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.context && w.context.path.endsWith('.ipynb') && w.content && w.content.widgets.length > 0; }")
    path = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert path not in before and path.startswith("Untitled")
    saved = json.loads((lab.root / path).read_text())
    expected = quickstart()
    assert ["".join(c["source"]) for c in saved["cells"]] == ["".join(c["source"]) for c in expected["cells"]]
    assert saved["metadata"]["kernelspec"]["name"] == "python3"
    cells = page.locator(".jp-NotebookPanel .jp-Cell")
    expect(cells).to_have_count(len(expected["cells"]))
    expect(page.locator(".jp-NotebookPanel .jp-MarkdownOutput h1").first).to_contain_text("quickstart")
    shot(page, "labext-new-notebook")
    close_current(page)


def close_current(page) -> None:
    """Shut the current document's kernel down and close it, with no dialog to answer."""
    page.evaluate("async () => { const w = window.jupyterapp.shell.currentWidget;"
                  " await w.sessionContext.shutdown(); w.dispose(); }")


@pytest.mark.slow
def test_panel_follows_runs_from_a_notebook_and_stops_one(page, lab):
    notebook = lab.write_notebook("panel_runs.ipynb", RUNS_NOTEBOOK)
    open_lab(page, lab, notebook)
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }", timeout=120_000)
    # not awaited: the command's promise settles only when the last cell (long.wait()) returns
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.evaluate("() => window.jupyterapp.commands.execute('ftkit:show-runs')")
    panel = page.locator(".ftkit-runs-panel")
    expect(panel).to_be_visible()

    wait_status(page, SHORT, "running")
    short = row(page, SHORT)
    expect(short.locator(".ftkit-run-method")).to_have_text("lora")
    expect(short.locator(".ftkit-run-task")).to_have_text("classification")
    expect(short.locator(".ftkit-run-stop")).to_be_visible()
    shot(page, "labext-panel-running")

    wait_status(page, SHORT, "finished")
    expect(short.locator(".ftkit-run-best")).to_contain_text("accuracy")
    expect(short.locator(".ftkit-run-stop")).to_be_hidden()

    wait_status(page, LONG, "running")
    long = row(page, LONG)
    # newest first: the long run sits above the short one
    assert page.locator(".ftkit-runs-panel tbody tr").first.get_attribute("data-run-id") == \
        long.get_attribute("data-run-id")
    shot(page, "labext-panel-finished")
    long.locator(".ftkit-run-stop").click()
    wait_status(page, LONG, "stopped", timeout=120_000)
    run_id = long.get_attribute("data-run-id")
    summary = json.loads((lab.runs / run_id / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] < 100000
    shot(page, "labext-panel-stopped")

    # Dashboard: a console that shows the finished run's live dashboard
    short.locator(".ftkit-run-dashboard").click()
    dashboard = page.locator(".jp-CodeConsole .ftkit-dashboard")
    expect(dashboard).to_be_visible(timeout=120_000)
    expect(dashboard.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    shot(page, "labext-dashboard-console")
    page.evaluate("() => window.jupyterapp.serviceManager.sessions.shutdownAll()")


def test_the_api_refuses_requests_without_the_token(browser, lab):
    """A browser with no token and no login cookie gets 403 from every endpoint; with the token, JSON."""
    context = browser.new_context()
    try:
        for path in ("ftkit/runs", "ftkit/template"):
            response = context.request.get(f"{lab.url}/{path}")
            assert response.status == 403, (path, response.status)
        response = context.request.post(f"{lab.url}/ftkit/runs/anything/stop")
        assert response.status == 403
        response = context.request.get(f"{lab.url}/ftkit/runs", headers={"Authorization": f"token {lab.token}"})
        assert response.status == 200 and "runs" in response.json()
    finally:
        context.close()
