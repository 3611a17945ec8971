"""Two notebooks attach a dashboard to the same finished run at the same moment: both plots draw, full width.

Each kernel builds its dashboard and draws the run's whole backlog before the browser has rendered the
plot's view; the view must end up with every point, axes fitted to them, and plotly's figure as wide as
its box (not the 700 px plotly takes when it renders before it is on the page). Run in two pages (two
JupyterLab windows with their own workspaces, two kernels), started together.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lab import open_and_run, shot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _fakes import training_events  # noqa: E402
from ftkit.config import RunConfig  # noqa: E402

pytestmark = pytest.mark.browser

STEPS = 120
RUN_ID = "two-views-run"
NOTEBOOK = f"from ftkit.widgets import Dashboard\nDashboard.attach({RUN_ID!r}, plots=\"figurewidget\")"

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


def finished_run(runs: Path) -> None:
    """A finished run folder as the store reads it: config and events (the run trained elsewhere)."""
    folder = runs / RUN_ID
    folder.mkdir(parents=True, exist_ok=True)
    RunConfig.preset("demo").set("training.max_steps", STEPS).to_json(folder / "config.json")
    events = training_events(STEPS, eval_every=40)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_two_notebooks_attaching_at_once_both_draw_the_run_at_full_width(browser, lab):
    finished_run(lab.runs)
    names = [lab.write_notebook(f"view{i}.ipynb", [NOTEBOOK]) for i in (1, 2)]
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
        seen = []
        for i, page in enumerate(pages, start=1):
            page.locator(".ftkit-dashboard .js-plotly-plot").wait_for(timeout=120_000)
            try:
                page.wait_for_function(f"() => {{ const d = ({DRAWN})(); return d && d.last === {STEPS}"
                                       " && d.xmax >= d.last && Math.abs(d.width - d.box) <= 2; }",
                                       timeout=30_000)
            except Exception:
                pass  # the assertions below say what is missing
            drawn = page.evaluate(DRAWN)
            shot(page, f"two-views-{i}")
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
                shot(page, f"two-views-{i}-final")
            except Exception:
                pass
            context.close()
