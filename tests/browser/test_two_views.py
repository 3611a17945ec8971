"""Two notebooks attach a dashboard to the same run at the same moment: both plots draw, full width.

Each kernel builds its dashboard and draws the run's whole backlog before the browser has rendered the
plot's view; the view must end up with every point, axes fitted to them, and plotly's figure as wide as
its box (not the 700 px plotly takes when it renders before it is on the page). Run in two pages (two
JupyterLab windows with their own workspaces, two kernels), started together, on a finished run and on a
live one whose points start arriving while the browser is still loading plotly (the first autorange is
sent before the view exists: without the catch-up the axes stay on their empty 0-1 range).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from lab import open_and_run, shot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _fakes import training_events  # noqa: E402
from ftkit.config import RunConfig  # noqa: E402
from ftkit.liveness import owner_record  # noqa: E402

pytestmark = pytest.mark.browser

STEPS = 120


def notebook(run_id: str) -> str:
    return f"from ftkit.widgets import Dashboard\nDashboard.attach({run_id!r}, plots=\"figurewidget\")"

# the dashboard's "train loss" trace as the page's plotly element holds it, and its width against its box
DRAWN = """() => {
  const el = document.querySelector('.ftkit-dashboard .js-plotly-plot');
  if (!el || !el._fullLayout) return null;
  const loss = (el.data || []).filter(t => t.name === 'train loss');
  const xs = loss.length ? Array.from(loss[0].x || []) : [];
  const range = el._fullLayout.xaxis.range;
  return {traces: loss.length, points: xs.length, last: xs.length ? Number(xs[xs.length - 1]) : -1,
          xmax: Number(range[1]), width: el._fullLayout.width, box: el.getBoundingClientRect().width};
}"""


def run_folder(runs: Path, live: bool) -> tuple[Path, list[dict]]:
    """A run folder as the store reads it (the run trains elsewhere): config and events; a live one holds
    only its first event and its owner record (this process, as a kernel training in a thread), and the
    rest is returned to be written as the run goes."""
    folder = runs / f"two-views-{'live' if live else 'finished'}"
    folder.mkdir(parents=True, exist_ok=True)
    RunConfig.preset("demo").set("training.max_steps", STEPS).to_json(folder / "config.json")
    events = training_events(STEPS, eval_every=40)
    now, later = (events[:1], events[1:]) if live else (events, [])
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in now))
    if live:
        (folder / "worker.json").write_text(json.dumps(owner_record("thread", os.getpid())))
    return folder, later


def write_as_it_goes(folder: Path, events: list[dict], every_s: float = 0.1) -> threading.Thread:
    """Append ``events`` one by one, as a training process does."""
    def write():
        with open(folder / "events.jsonl", "a") as f:
            for event in events:
                f.write(json.dumps(event) + "\n")
                f.flush()
                time.sleep(every_s)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("live", [False, True], ids=["finished", "live"])
def test_two_notebooks_attaching_at_once_both_draw_the_run_at_full_width(browser, lab, live):
    folder, later = run_folder(lab.runs, live)
    names = [lab.write_notebook(f"{folder.name}-{i}.ipynb", [notebook(folder.name)]) for i in (1, 2)]
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in names]
    pages = [c.new_page() for c in contexts]
    try:
        for i, (page, name) in enumerate(zip(pages, names), start=1):  # a workspace each: two windows
            page.set_default_timeout(120_000)
            page.goto(f"{lab.url}/lab/workspaces/two{i}/tree/{name}?reset&token={lab.token}")
        for page, name in zip(pages, names):  # both kernels up, then both notebooks run together
            page.wait_for_function(
                "(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.context && w.context.path === path && w.sessionContext"
                "   && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", arg=name, timeout=120_000)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        for page in pages:
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        if later:
            write_as_it_goes(folder, later)
        seen = []
        for i, page in enumerate(pages, start=1):
            page.locator(".ftkit-dashboard .js-plotly-plot").wait_for(timeout=120_000)
            try:
                page.wait_for_function(f"() => {{ const d = ({DRAWN})(); return d && d.last === {STEPS}"
                                       " && d.xmax >= d.last && Math.abs(d.width - d.box) <= 2; }",
                                       timeout=60_000 if live else 30_000)
            except Exception:
                pass  # the assertions below say what is missing
            drawn = page.evaluate(DRAWN)
            shot(page, f"two-views-{'live' if live else 'finished'}-{i}")
            seen.append(drawn)
        for i, drawn in enumerate(seen, start=1):
            assert drawn is not None, f"notebook {i}: no plot"
            assert drawn["traces"] == 1, f"notebook {i}: one curve, one trace: {drawn}"
            assert drawn["points"] == STEPS and drawn["last"] == STEPS, f"notebook {i}: the plot is blank: {drawn}"
            assert drawn["xmax"] >= STEPS, f"notebook {i}: the axis is stuck on its empty range: {drawn}"
            assert abs(drawn["width"] - drawn["box"]) <= 2, f"notebook {i}: the plot does not fill its box: {drawn}"
    finally:
        for i, (page, context) in enumerate(zip(pages, contexts), start=1):
            try:
                shot(page, f"two-views-{'live' if live else 'finished'}-{i}-final")
            except Exception:
                pass
            context.close()
