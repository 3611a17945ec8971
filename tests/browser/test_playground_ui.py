"""The playground in a real JupyterLab page: type, press Run, see each model's output in its own column.

The test trains a classification and an NER run (a few LoRA steps on the
pretrained MiniLM) into the lab's runs folder; a notebook shows one
playground for each, with the base model beside the tuned run.
"""
from __future__ import annotations

import pytest
from lab import open_and_run, shot
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POSITIVE = "This blender is excellent and well made. Highly recommended."
SENTENCE = "Yesterday Ada Novak met Tomas Silva at the Helix Labs office in Lisbon ."


@pytest.fixture(scope="module")
def run_ids(lab, _model_cache):
    """A finished classification run and NER run in the lab's runs folder."""
    import torch

    from ftkit.config import RunConfig
    from ftkit.engine.train import train
    from ftkit.store import RunStore

    quick = {"training.max_steps": 30, "training.batch_size": 8, "training.learning_rate": 5e-3,
             "training.max_seq_length": 48, "training.eval_steps": 0, "training.save_steps": 0,
             "data.max_eval_samples": 8, "runs_dir": str(lab.runs)}
    ids = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("FTKIT_CACHE", _model_cache)
            env.setenv("HF_HUB_OFFLINE", "1")
            for task, preset in (("classification", "demo"), ("ner", "ner-demo")):
                config = RunConfig.preset(preset).update(quick)
                record = RunStore(lab.runs).create(config)
                assert train(config, record.path)["status"] == "finished"
                ids[task] = record.id
    finally:
        torch.set_num_threads(threads)
    return ids


@pytest.fixture(scope="module")
def playgrounds(browser, lab, run_ids):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    notebook = lab.write_notebook("playground.ipynb", [
        f"from ftkit.widgets import Playground\nPlayground([{run_ids['classification']!r}])",
        f"Playground([{run_ids['ner']!r}], text={SENTENCE!r})",
    ])
    open_and_run(page, lab, notebook)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    expect(page.locator(".ftkit-playground")).to_have_count(2, timeout=120_000)
    expect.set_options(timeout=30_000)
    try:
        yield page
    finally:
        expect.set_options(timeout=5_000)
        context.close()


def columns(playground) -> list[dict]:
    """Per column: its title and the bars' labels, widths (px) and values, or the marked entities."""
    return playground.locator(".ftkit-playground-column").evaluate_all("""cols => cols.map(c => ({
        title: c.querySelector('.ftkit-playground-title').innerText,
        bars: [...c.querySelectorAll('.ftkit-prob-row')].map(r => ({
            label: r.querySelector('.ftkit-prob-label').innerText,
            px: r.querySelector('.ftkit-prob-bar').getBoundingClientRect().width,
            p: Number(r.querySelector('.ftkit-prob-bar').dataset.p)})),
        entities: [...c.querySelectorAll('mark.ftkit-entity')].map(m => ({
            label: m.dataset.label, text: m.firstChild.textContent,
            color: getComputedStyle(m).backgroundColor})),
        errors: c.querySelectorAll('.ftkit-playground-error').length,
    }))""")


def test_classification_columns_show_probability_bars(playgrounds, run_ids):
    page = playgrounds
    playground = page.locator(".ftkit-playground").nth(0)
    expect(playground.locator(".ftkit-playground-column")).to_have_count(2)
    playground.locator(".ftkit-playground-text textarea").fill(POSITIVE)
    playground.locator(".ftkit-playground-run").click()
    status = playground.locator(".ftkit-playground-status")
    expect(status).to_contain_text("done: 2 models", timeout=240_000)
    expect(playground.locator(".ftkit-prob-bar")).to_have_count(4)
    playground.evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(page, "playground-classification")

    base, tuned = columns(playground)
    assert "base model" in base["title"] and run_ids["classification"] in tuned["title"]
    assert not base["errors"] and not tuned["errors"]
    for column in (base, tuned):
        assert sorted(b["label"] for b in column["bars"]) == ["negative", "positive"]
        assert abs(sum(b["p"] for b in column["bars"]) - 1) < 1e-4
        first, second = column["bars"]
        assert first["p"] >= second["p"] and first["px"] >= second["px"], column
    top = tuned["bars"][0]
    assert top["label"] == "positive" and top["p"] > 0.6
    assert top["px"] > 2 * tuned["bars"][1]["px"], "the drawn bars do not follow the probabilities"


def test_ner_columns_highlight_entities(playgrounds, run_ids):
    page = playgrounds
    playground = page.locator(".ftkit-playground").nth(1)
    expect(playground.locator(".ftkit-playground-text textarea")).to_have_value(SENTENCE)
    playground.locator(".ftkit-playground-run").click()
    expect(playground.locator(".ftkit-playground-status")).to_contain_text("done: 2 models", timeout=240_000)
    tuned_column = playground.locator(".ftkit-playground-column").nth(1)
    expect(tuned_column.locator("mark.ftkit-entity").first).to_be_visible()
    playground.evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(page, "playground-ner")

    base, tuned = columns(playground)
    assert run_ids["ner"] in tuned["title"]
    assert not tuned["errors"]
    assert tuned["entities"], tuned
    for entity in tuned["entities"]:
        assert entity["label"] in {"PER", "ORG", "LOC"}
        assert entity["text"] in SENTENCE
        assert entity["color"] not in ("rgba(0, 0, 0, 0)", "transparent"), "entities are highlighted"
    assert "PER" in {e["label"] for e in tuned["entities"]}
