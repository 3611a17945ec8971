"""The README's tour pictures: a demo run that really learns, and three methods compared on it.

Unlike the UI tests' short budgets, these runs are long enough for the
curves to mean something, and the test checks that they do (accuracy far
above chance) before it keeps the screenshots. The comparison searches each
method's learning rate, then trains each over two seeds: its picture shows
the verdict, the per-method table and the mean curves with their bands.
"""
from __future__ import annotations

import json
import re

import pytest
from lab import open_and_run, shot
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = 60
COMPARE_STEPS = 40
COMPARE_SEEDS = 2

NOTEBOOK = [
    f"""\
from ftkit import Controller, RunConfig
from ftkit.widgets import Comparison, Dashboard

controller = Controller()
config = RunConfig.preset("demo").update({{"name": "tour", "training.max_steps": {STEPS}, "training.eval_steps": 20}})
run = controller.start(config)
Dashboard(run, controller)""",
    f"""\
run.wait()
compare = Comparison(controller, config.update({{"name": "tour-compare", "training.eval_steps": 20}}),
                     methods=["lora", "dora", "ia3"], seeds={COMPARE_SEEDS}, budget="{COMPARE_STEPS} steps",
                     search="on")
compare.start()
compare""",
    "compare.wait()",
]


def summaries(lab, name: str) -> list[dict]:
    """Summaries of the runs whose id is ``<date>-<time>-<name>-<4 hex>``."""
    ours = [p for p in sorted(lab.runs.iterdir()) if re.fullmatch(rf"\d{{8}}-\d{{6}}-{name}-[0-9a-f]{{4}}", p.name)]
    return [json.loads((p / "summary.json").read_text()) for p in ours if (p / "summary.json").exists()]


def test_tour_runs_learn_and_make_the_readme_pictures(page, lab):
    notebook = lab.write_notebook("tour.ipynb", NOTEBOOK)
    open_and_run(page, lab, notebook)
    dashboard = page.locator(".ftkit-dashboard").first
    expect(dashboard.locator(".ftkit-status-text")).to_have_text("finished", timeout=600_000)
    dashboard.scroll_into_view_if_needed()
    page.evaluate("() => document.querySelector('.ftkit-dashboard').scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1500)
    shot(page, "tour-dashboard")

    (demo,) = summaries(lab, "tour")
    assert demo["status"] == "finished" and demo["metrics"]["accuracy"] >= 0.85, demo["metrics"]

    comparison = page.locator(".ftkit-comparison")
    runs = 3 * 3 + 3 * COMPARE_SEEDS  # three learning rates tried per method, then the seeds
    page.wait_for_function(f"() => document.querySelectorAll('.ftkit-comparison .ftkit-results tr').length > {runs}"
                           " && !document.querySelector('.ftkit-comparison .ftkit-results').innerText"
                           ".match(/running|queued|starting/)", timeout=900_000)
    expect(comparison.locator(".ftkit-verdict")).to_contain_text("Welch's t-test", timeout=60_000)
    expect(comparison.locator(".ftkit-verdict")).to_contain_text(f"{COMPARE_SEEDS} seeds")
    expect(comparison.locator("table.ftkit-study-table")).to_contain_text("±")
    # the mean curves with their bands (filled traces) and the search curve are drawn
    page.wait_for_function("() => { const p = document.querySelector('.ftkit-study .js-plotly-plot');"
                           " return p && p.data.filter(t => t.fill === 'toself').length >= 6"
                           " && p.data.some(t => (t.name || '').endsWith(' search')); }", timeout=60_000)
    page.evaluate("() => document.querySelector('.ftkit-comparison .ftkit-study-settings')"
                  ".scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1500)
    shot(page, "tour-comparison")
    compared = summaries(lab, r"tour-compare-(lora|dora|ia3)")
    assert len(compared) == 3 * COMPARE_SEEDS and all(s["status"] == "finished" for s in compared)
    assert max(s["metrics"]["accuracy"] for s in compared) >= 0.85, [s["metrics"] for s in compared]
