"""The playground as a Python object: columns per model, Run in a background thread, HTML per task kind.

One briefly trained classification run feeds the end-to-end checks; the
renderers are checked on hand-made results; configs alone (runs created,
not trained) cover the layout rules and the refusal of mixed tasks.
"""
from __future__ import annotations

import html
import re
import subprocess
import sys

import pytest

from ftkit.config import RunConfig
from ftkit.engine.train import train
from ftkit.predict import Answer, Classification, Entities, Entity, Generation
from ftkit.store import RunStore
from ftkit.widgets import Playground
from ftkit.widgets.playground import render, render_answer, render_classification, render_entities

POSITIVE = "This blender is excellent and well made. Highly recommended."


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, _model_cache):
    """A classification run on the pretrained MiniLM, a few LoRA steps: enough to beat the base model."""
    import torch

    root = tmp_path_factory.mktemp("playground-runs")
    config = RunConfig.preset("demo").update({
        "training.max_steps": 30, "training.batch_size": 8, "training.max_seq_length": 48,
        "training.learning_rate": 5e-3, "training.eval_steps": 0, "training.save_steps": 0,
        "data.max_eval_samples": 8, "runs_dir": str(root),
    })
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("FTKIT_CACHE", _model_cache)
            env.setenv("HF_HUB_OFFLINE", "1")
            record = RunStore(root).create(config)
            assert train(config, record.path)["status"] == "finished"
    finally:
        torch.set_num_threads(threads)
    return record


def untrained(task: str):
    """A run folder with its config only (no model): enough to build a playground's layout."""
    return RunStore().create(RunConfig().set("task.name", task))


def outputs(playground) -> list[str]:
    return [column.output.value for column in playground.columns]


# ---- end to end -------------------------------------------------------------------------------------


def test_run_fills_a_column_per_model_with_probability_bars(classifier):
    playground = Playground([classifier], text=POSITIVE)
    assert [c.predictor.is_base for c in playground.columns] == [True, False]
    assert "base model" in playground.columns[0].title.value
    assert classifier.id in playground.columns[1].title.value and "lora" in playground.columns[1].title.value
    playground.run_button.click()
    assert playground._thread is not None, "Run works in a background thread"
    playground._thread.join(timeout=300)
    assert not playground.run_button.disabled
    assert "done: 2 models" in playground.status.value
    base, tuned = (c.result for c in playground.columns)
    assert isinstance(base, Classification) and isinstance(tuned, Classification)
    assert tuned.label == "positive" and tuned.probabilities["positive"] > base.probabilities["positive"]
    for column in playground.columns:
        bars = re.findall(r"class='ftkit-prob-bar' data-p='([\d.]+)' style='[^']*width:([\d.]+)%", column.output.value)
        assert len(bars) == 2
        assert [round(100 * float(p), 1) for p, _ in bars] == [float(w) for _, w in bars]
        assert float(bars[0][0]) >= float(bars[1][0]), "most probable first"
        assert "s</span>" in column.footer.value  # its time

    playground.text.value = "The toaster is awful and broken. I am sending it back."
    playground.run(wait=True)
    assert playground.columns[1].result.label == "negative"


def test_errors_stay_in_their_column(classifier):
    playground = Playground([classifier, untrained("classification")], base=False, text=POSITIVE)
    playground.run(wait=True)
    good, bad = playground.columns
    assert isinstance(good.result, Classification) and good.error is None
    assert bad.result is None and "has no saved model" in bad.error
    assert "ftkit-playground-error" in bad.output.value and "Traceback" not in bad.output.value
    assert "1 failed" in playground.status.value


def test_empty_input_is_refused_before_any_work(classifier):
    playground = Playground(classifier, base=False)
    assert playground.run() is None
    assert "type a text first" in playground.status.value
    assert playground.columns[0].result is None and not playground.run_button.disabled


# ---- layout from configs alone ----------------------------------------------------------------------


def test_runs_of_different_tasks_are_refused():
    with pytest.raises(ValueError, match=r"^runs: a playground compares runs of one task.*ner.*classification"
                                         r"|^runs: a playground compares runs of one task.*classification.*ner"):
        Playground([untrained("ner"), untrained("classification")])
    with pytest.raises(ValueError, match="^runs: give at least one run"):
        Playground([])


def test_inputs_and_options_follow_the_task():
    qa = Playground(untrained("qa"))
    assert qa.context in qa.children and qa.options not in qa.children
    assert qa.text.placeholder == "question"
    assert qa.run() is None and "type a question first" in qa.status.value
    qa.text.value = "Who?"
    assert qa.run() is None and "paste a context" in qa.status.value

    chat = Playground([untrained("chat"), untrained("chat")])
    assert chat.options in chat.children and chat.context not in chat.children
    assert len(chat.columns) == 3, "one base column for two runs on the same base model"
    defaults = chat.predictors[-1].defaults()
    assert chat.max_new_tokens.value == defaults["max_new_tokens"]
    assert chat.temperature.value == defaults["temperature"]

    ner = Playground(untrained("ner"), base=False)
    assert ner.options not in ner.children and ner.context not in ner.children
    assert len(ner.columns) == 1


def test_importing_and_building_a_playground_loads_no_training_stack(tmp_path):
    record = untrained("classification")
    code = (
        "import sys\n"
        "from ftkit.widgets import Playground\n"
        f"Playground({str(record.path)!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


# ---- the HTML of each kind of result ------------------------------------------------------------------


def test_entities_are_marked_inline_and_the_text_is_escaped():
    text = "<b>Ada</b> works for Helix Labs in Lisbon."
    result = Entities([Entity("Ada", "PER", 3, 6, 0.9), Entity("Helix Labs", "ORG", 21, 31, 0.8),
                       Entity("Lisbon", "LOC", 35, 41, 0.7)])
    out = render_entities(result, text)
    marks = re.findall(r"<mark class='ftkit-entity' data-label='(\w+)'[^>]*>([^<]*)<span", out)
    assert marks == [("PER", "Ada"), ("ORG", "Helix Labs"), ("LOC", "Lisbon")]
    assert "&lt;b&gt;" in out and "<b>Ada" not in out
    plain = re.sub(r"<span class='ftkit-entity-label'[^>]*>\w+</span>", "", out)
    assert html.unescape(re.sub(r"<[^>]+>", "", plain)) == text, "the text around the marks is kept whole"
    assert "no entities found" in render_entities(Entities([]), "nothing")


def test_answer_is_marked_in_its_context():
    context = "Mara Quill was born in Lowmere in 1850."
    out = render_answer(Answer("Lowmere", 23, 30, 0.75), context)
    assert "<mark class='ftkit-answer'" in out and ">Lowmere</mark>" in out
    assert "answer: <b>Lowmere</b>" in out and "0.75" in out
    assert "no answer found" in render_answer(Answer("", 0, 0, 0.0), context)


def test_bars_and_generated_text():
    out = render_classification(Classification("b", {"a": 0.25, "b": 0.75}))
    widths = re.findall(r"width:([\d.]+)%", out)
    assert widths == ["75.0", "25.0"]
    assert "label: <b>b</b>" in out
    generated = render(Generation("a verse"), "Title: <Fox>\n", prompt=True)
    assert "Title: &lt;Fox&gt;" in generated and generated.endswith("a verse</div>")
    assert "stopped at once" in render(Generation(""), "x")
