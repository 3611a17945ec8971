"""The notebook UI in a real JupyterLab page: form, validation, Start, live plot, Stop, comparison.

One notebook shows ``App`` on a short demo config and one kernel serves every
test, in file order. The loss plot is recorded from inside the page: an init
script polls the dashboard's plotly element every 50 ms and notes when its
last step changes, so the assertions (and the step-to-browser delay) do not
depend on when Python looks.
"""
from __future__ import annotations

import json
import re
import statistics
import time

import pytest
from lab import WATCH_S, open_and_run, record_timing, shot, wait_for_app
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

STEPS = 20  # the embedded default's budget: short, but long enough to watch the plot grow
COMPARE_STEPS = 6
METHODS = ["lora", "dora", "ia3"]
SECTIONS = ["Model", "Data", "Task", "Method", "Quantization", "Distributed", "Training"]

NOTEBOOK = f"""\
from ftkit.config import RunConfig
from ftkit.widgets import App

config = RunConfig.preset("demo").update({{
    "training.max_steps": {STEPS}, "training.batch_size": 4, "training.max_seq_length": 48,
    "training.logging_steps": 1, "training.eval_steps": 0, "data.max_eval_samples": 16,
}})
app = App(config=config, methods={METHODS!r})
app
"""

# Every 50 ms: for each dashboard plot on the page, the highest step its "train loss" traces show.
RECORDER = """
(() => {
  const rec = window.__ftkitPlots = {plots: 0, samples: []};
  const ids = new WeakMap();
  const top = (el) => {
    let best = -1, points = 0;
    for (const trace of (el.data || [])) {
      if (trace.name !== 'train loss' || !trace.x) continue;
      points += trace.x.length;
      for (let i = 0; i < trace.x.length; i++) best = Math.max(best, Number(trace.x[i]));
    }
    return [best, points];
  };
  setInterval(() => {
    document.querySelectorAll('.ftkit-dashboard .js-plotly-plot').forEach((el) => {
      if (!ids.has(el)) ids.set(el, {id: ++rec.plots, step: -1});
      const seen = ids.get(el);
      const [step, points] = top(el);
      if (step !== seen.step) {
        seen.step = step;
        rec.samples.push({plot: seen.id, t: Date.now(), step, points});
      }
    });
  }, 50);
})();
"""


# ---- page helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui(browser, lab):
    """One page with the App notebook open and run; its kernel is shared by the tests below."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(RECORDER)
    open_and_run(page, lab, lab.write_notebook("ui.ipynb", [NOTEBOOK]))
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the widgets get the page's width
    wait_for_app(page)
    expect.set_options(timeout=30_000)  # each check waits on a round trip through a busy kernel
    try:
        yield page
    finally:
        expect.set_options(timeout=5_000)
        context.close()


def to_top(locator) -> None:
    """Scroll the notebook so that ``locator`` starts at the top of the view (for screenshots)."""
    locator.evaluate("e => e.scrollIntoView({block: 'start'})")


def tab(page, title: str) -> None:
    page.locator(".ftkit-app .lm-TabBar-tab").filter(has_text=title).first.click()


def section(page, title: str) -> None:
    """Open one section of the form's accordion (the others fold)."""
    header = page.locator(".ftkit-form .jupyter-widget-Collapse-header").filter(
        has_text=re.compile(rf"^\s*{title}\b")).first
    opened = header.evaluate("h => h.parentElement.classList.contains('jupyter-widget-Collapse-open')")
    if not opened:
        header.click()


def field(page, path: str):
    return page.locator(".ftkit-field-" + path.replace(".", "-").replace("_", "-"))


def choose(select, value: str) -> None:
    """Pick a registry entry in a dropdown labelled "Title (name)"."""
    labels = select.evaluate("s => [...s.options].map(o => o.textContent)")
    select.select_option(label=next(label for label in labels if label.endswith(f"({value})")))


def type_into(page, path: str, value) -> None:
    """Type a value into a field and commit it (Enter), as a person does."""
    box = field(page, path).locator("input")
    box.fill(str(value))
    box.press("Enter")


def set_budget(page, steps: int) -> None:
    tab(page, "Configure")
    section(page, "Training")
    type_into(page, "training.max_steps", steps)
    expect(page.locator(".ftkit-start")).to_be_enabled()


def samples(page, plot: int) -> list[dict]:
    return page.evaluate(f"() => window.__ftkitPlots.samples.filter(s => s.plot === {plot})")


def newest_plot(page) -> int:
    return page.evaluate("() => window.__ftkitPlots.plots")


def start_run(page, steps: int) -> tuple[int, str]:
    """Click Start; returns the recorder's id for the new dashboard plot and the run id."""
    before = newest_plot(page)
    set_budget(page, steps)
    page.locator(".ftkit-start").click()
    dashboard = page.locator(".ftkit-dashboard")
    expect(dashboard).to_be_visible()
    page.wait_for_function(f"() => window.__ftkitPlots.plots > {before}")
    run_id = dashboard.locator(".ftkit-status b").first.inner_text().strip()
    assert run_id, "the dashboard names its run"
    return newest_plot(page), run_id


def plot_fills_its_box(locator) -> bool:
    """Plotly drew the figure as wide as the element holding it (not its 700 px default)."""
    return locator.evaluate("e => Math.abs(e._fullLayout.width - e.getBoundingClientRect().width) <= 2")


def events(lab, run_id: str) -> list[dict]:
    path = lab.runs / run_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- tests --------------------------------------------------------------------------------


def test_form_renders_its_sections_and_method_options(ui):
    page = ui
    form = page.locator(".ftkit-form")
    expect(form).to_be_visible()
    headers = form.locator(".jupyter-widget-Collapse-header")
    for title in SECTIONS:
        expect(headers.filter(has_text=re.compile(rf"^\s*{title}\b")).first).to_be_visible()
    expect(page.locator(".ftkit-start")).to_be_enabled()
    section(page, "Method")
    expect(field(page, "method.lora.r")).to_be_visible()
    expect(field(page, "method.lora.r").locator("input")).to_have_value("8")  # from the demo preset
    shot(page, "ui-form")

    method = field(page, "method.name").locator("select")
    choose(method, "ia3")
    expect(field(page, "method.ia3.target_modules")).to_be_visible()
    expect(field(page, "method.lora.r")).to_have_count(0)
    shot(page, "ui-form-ia3")
    choose(method, "lora")
    expect(field(page, "method.lora.r")).to_be_visible()
    expect(field(page, "method.ia3.target_modules")).to_have_count(0)
    expect(page.locator(".ftkit-start")).to_be_enabled()


def test_invalid_value_shows_its_message_and_disables_start(ui):
    page = ui
    tab(page, "Configure")
    section(page, "Method")
    r = field(page, "method.lora.r")
    type_into(page, "method.lora.r", 0)
    error = r.locator(".ftkit-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("must be >= 1, got 0")
    expect(r.locator(".ftkit-invalid")).to_have_count(1)
    expect(page.locator(".ftkit-start")).to_be_disabled()
    expect(page.locator(".ftkit-form-message")).to_contain_text("to fix before Start")
    to_top(field(page, "method.name"))  # the field, its message and the disabled Start in one view
    shot(page, "ui-invalid")

    type_into(page, "method.lora.r", 8)
    expect(error).to_be_hidden()
    expect(r.locator(".ftkit-invalid")).to_have_count(0)
    expect(page.locator(".ftkit-start")).to_be_enabled()


def test_start_trains_and_the_loss_plot_grows(ui, lab):
    page = ui
    plot, run_id = start_run(page, STEPS)
    status = page.locator(".ftkit-dashboard .ftkit-status-text")
    page.wait_for_function(
        f"() => window.__ftkitPlots.samples.some(s => s.plot === {plot} && s.step >= {STEPS // 2})",
        timeout=180_000)
    to_top(page.locator(".ftkit-dashboard"))
    shot(page, "ui-dashboard-running")
    expect(status).to_have_text("finished", timeout=180_000)
    summary = page.locator(".ftkit-dashboard .ftkit-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Run summary")
    expect(summary).to_contain_text(f"{STEPS} / {STEPS}")
    expect(page.locator(".ftkit-dashboard .ftkit-progress")).to_be_visible()
    to_top(page.locator(".ftkit-dashboard"))
    shot(page, "ui-finished")

    assert plot_fills_its_box(page.locator(".ftkit-dashboard .js-plotly-plot")), "the plots keep plotly's 700 px"

    seen = [s for s in samples(page, plot) if s["step"] >= 0]
    steps = [s["step"] for s in seen]
    assert steps == sorted(steps), f"the plot's last step went back: {steps}"
    assert steps[-1] == STEPS, f"the plot never reached step {STEPS}: {steps}"
    assert len(seen) >= 4, f"the plot should grow in several updates, saw {steps}"
    assert seen[-1]["t"] - seen[0]["t"] > 500, "all points arrived at once: nothing live about it"
    assert seen[-1]["points"] >= STEPS

    # Delay from a step event's emission (its "time") to the first page sample showing that step.
    emitted = {e["step"]: e["time"] for e in events(lab, run_id) if e["type"] == "step"}
    assert sorted(emitted) == list(range(1, STEPS + 1))
    delays = []
    for step, when in emitted.items():
        shown = next((s["t"] for s in seen if s["step"] >= step), None)
        if shown is not None and shown >= when * 1000 - 50:  # a step already on screen when recording began
            delays.append(shown - when * 1000)
    assert len(delays) >= STEPS // 2
    median = statistics.median(delays)
    print(f"\nstep event -> point in the browser: median {median:.0f} ms, "
          f"p90 {statistics.quantiles(delays, n=10)[-1]:.0f} ms, max {max(delays):.0f} ms over {len(delays)} steps")
    assert median < 5000


def test_stop_ends_the_run_with_a_checkpoint(ui, lab):
    page = ui
    page.evaluate("() => document.addEventListener('click', (e) => {"
                  " if (e.target.closest && e.target.closest('.ftkit-start')) window.__ftkitStarted = Date.now(); }, true)")
    plot, run_id = start_run(page, 2000)
    page.wait_for_function(
        f"() => window.__ftkitPlots.samples.some(s => s.plot === {plot} && s.step >= 3)", timeout=180_000)
    started = page.evaluate("() => window.__ftkitStarted")
    time.sleep(max(0.0, started / 1000 + WATCH_S - time.time()))  # the figure is "points after 30 s"
    drawn = [s for s in samples(page, plot) if s["points"] > 0]
    record_timing("jupyterlab", (drawn[0]["t"] - started) / 1000, drawn[-1]["points"])
    status = page.locator(".ftkit-dashboard .ftkit-status-text")
    expect(status).to_have_text("running")
    page.locator(".ftkit-dashboard .ftkit-stop").click()
    expect(status).to_have_text("stopped", timeout=120_000)
    expect(page.locator(".ftkit-dashboard .ftkit-summary")).to_contain_text("stopped")
    to_top(page.locator(".ftkit-dashboard"))
    shot(page, "ui-stopped")

    from ftkit.store import RunStore

    record = RunStore(lab.runs).get(run_id)
    ended = events(lab, run_id)[-1]
    assert ended["type"] == "ended" and ended["status"] == "stopped", ended
    last_step = max(e["step"] for e in events(lab, run_id) if e["type"] == "step")
    assert 3 <= last_step < 2000
    checkpoints = record.checkpoints()
    assert checkpoints, "a stopped run keeps a checkpoint"
    assert checkpoints[-1].name == f"checkpoint-{last_step}"


def test_three_method_comparison_fills_table_and_overlay(ui):
    page = ui
    set_budget(page, COMPARE_STEPS)
    tab(page, "Compare")
    comparison = page.locator(".ftkit-comparison").first
    expect(comparison.locator("select[multiple]").first).to_be_visible()
    chosen = comparison.locator("select[multiple]").first.evaluate(
        "s => [...s.selectedOptions].map(o => o.textContent)")
    assert [re.search(r"\((\w+)\)$", c).group(1) for c in chosen] == METHODS
    settings = comparison.locator(".ftkit-study-settings")  # one seed, no search: one run per method
    settings.locator("input").first.fill("1")
    settings.locator("input").first.press("Enter")
    settings.locator("select").select_option(label="off")
    page.wait_for_timeout(500)
    comparison.locator(".ftkit-compare-run").click()
    rows = comparison.locator(".ftkit-results tbody tr")
    expect(rows).to_have_count(3)
    page.wait_for_function(  # the first run's curve is on the overlay
        "() => { const all = document.querySelectorAll('.ftkit-comparison .js-plotly-plot');"
        " const el = all[all.length - 1];"
        " return el && (el.data || []).some(t => (t.xaxis || 'x') === 'x' && t.x && t.x.length >= 2); }",
        timeout=180_000)
    to_top(comparison)
    shot(page, "ui-comparison-running")
    page.wait_for_function(
        "() => { const rows = document.querySelectorAll('.ftkit-comparison .ftkit-results tbody tr');"
        " return rows.length === 3 && [...rows].every(r => /finished|failed|stopped/.test(r.textContent)); }",
        timeout=300_000)
    table = comparison.locator(".ftkit-results").evaluate(
        "t => ({head: [...t.querySelectorAll('th')].map(c => c.textContent),"
        " rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent))})")
    column = {name: i for i, name in enumerate(table["head"])}
    assert sorted(row[column["method"]] for row in table["rows"]) == sorted(METHODS)
    assert [row[column["status"]] for row in table["rows"]] == ["finished"] * 3, table
    assert all(row[column["steps"]] == str(COMPARE_STEPS) for row in table["rows"]), table
    assert all(row[column["trainable_params"]] not in ("", "-") for row in table["rows"]), table

    expect(comparison.locator(".ftkit-verdict")).to_contain_text("Not enough seeds to tell")
    live = comparison.locator(".js-plotly-plot").last  # below the study's plot: every run, live
    assert plot_fills_its_box(live)
    assert comparison.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the wide table widens the view"
    overlay = live.evaluate(
        "el => el.data.filter(t => (t.xaxis || 'x') === 'x' && t.x && t.x.length > 0).map(t => t.name)")
    assert sorted({name.split()[0] for name in overlay}) == sorted(METHODS), overlay
    to_top(live)
    shot(page, "ui-comparison")
