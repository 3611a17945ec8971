"""The notebook widgets as Python objects: set values, click, push events, read their state.

A fake controller replays scripted events (``_fakes``), so nothing here trains.
"""
from __future__ import annotations

import html
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import ipywidgets as widgets
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the fakes sit next to this file

from _fakes import FakeController, FakeRun, finished, training_events
from ftkit.config import RunConfig, list_presets
from ftkit.errors import ConfigError
from ftkit.events import make_event
from ftkit.methods import methods
from ftkit.tasks import tasks
from ftkit.widgets import App, Comparison, ConfigForm, Dashboard, DataPreview, ModelSummary

REPO = Path(__file__).resolve().parents[1]


def demo() -> RunConfig:
    return RunConfig.preset("demo")


def expected_problem(config: RunConfig, path: str, value) -> str:
    """The validator's own message for ``path`` set to ``value``."""
    data = config.model_dump(mode="json")
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(data)
    return dict(info.value.problems)[path]


# ---- importing stays light -------------------------------------------------------


def test_importing_and_building_widgets_loads_no_training_stack():
    code = (
        "import sys\n"
        "from ftkit.widgets import App, ConfigForm, Dashboard, Comparison, DataPreview, ModelSummary\n"
        "App(controller=object())\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets', 'deepspeed', 'bitsandbytes') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"


# ---- the form ------------------------------------------------------------------------


def test_form_is_generated_from_the_config_metadata():
    form = ConfigForm()
    kinds = {
        "model.dtype": widgets.Dropdown,
        "model.trust_remote_code": widgets.Checkbox,
        "training.batch_size": widgets.IntText,
        "training.learning_rate": widgets.FloatText,
        "training.max_steps": widgets.Text,  # optional: may stay empty
        "data.columns": widgets.Text,  # a mapping, typed as YAML
        "training.report_to": widgets.SelectMultiple,
        "method.name": widgets.Dropdown,
        "task.name": widgets.Dropdown,
    }
    for path, kind in kinds.items():
        assert isinstance(form.fields[path].input, kind), path
    info = RunConfig.model_fields["training"].annotation.model_fields["learning_rate"]
    assert form.fields["training.learning_rate"].input.tooltip.startswith(info.description)
    assert info.description in form.fields["training.learning_rate"].help.value
    assert "(> 0, <= 1)" in form.fields["training.learning_rate"].input.tooltip
    # every plain field of every section has a widget; options of methods/tasks appear when chosen
    for path in form._specs:
        if not path.startswith(("method.", "task.")) or path.endswith(".name"):
            assert path in form.fields, path
    titles = form.sections.titles
    for title in ("Model", "Data", "Task", "Method", "Quantization", "Distributed", "Training"):
        assert title in titles
    assert set(form.fields["method.name"].input.options[i][1] for i in range(len(methods))) == set(methods.names())
    # advanced fields are folded into an "Advanced" accordion of their section
    training_box = form.sections.children[titles.index("Training")]
    folds = [c for c in training_box.children if isinstance(c, widgets.Accordion)]
    assert folds and form.fields["training.optimizer"].box in folds[0].children[0].children
    assert form.valid and not form.start_button.disabled


@pytest.mark.parametrize("name", methods.names())
def test_method_dropdown_swaps_in_that_methods_options(name):
    form = ConfigForm()
    form.set("method.name", name)
    shown = form._entry_holders["method"].children
    own = [p for p in form._specs if p.startswith(f"method.{name}.")]
    if own:
        boxes = _boxes(shown[0])
        for path in own:
            assert form.fields[path].box in boxes, path
        others = [p for p in form.fields if p.startswith("method.") and not p.startswith(f"method.{name}.")
                  and p != "method.name"]
        assert not any(form.fields[p].box in boxes for p in others)
    assert methods.get(name).summary in form._entry_notes["method"].value.replace("&#x27;", "'")


@pytest.mark.parametrize("name", tasks.names())
def test_task_dropdown_swaps_in_that_tasks_options(name):
    form = ConfigForm()
    form.set("task.name", name)
    own = [p for p in form._specs if p.startswith(f"task.{name}.")]
    boxes = _boxes(form._entry_holders["task"].children[0]) if own else []
    for path in own:
        assert form.fields[path].box in boxes


def _boxes(widget) -> list:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += _boxes(child)
    return out


def test_invalid_value_shows_the_validators_message_and_disables_start():
    form = ConfigForm()
    field = form.fields["method.lora.r"]
    field.input.value = 0  # as typed in the browser
    message = expected_problem(form.config if form.valid else RunConfig(), "method.lora.r", 0)
    assert field.message == message
    assert html.escape(message) in field.error.value and field.error.layout.display == "block"
    assert "ftkit-invalid" in field.input._dom_classes
    assert form.start_button.disabled and not form.valid
    assert any("Method" in t and "\u26a0" in t for t in form.sections.titles)
    with pytest.raises(ConfigError) as info:
        form.config
    assert ("method.lora.r", message) in info.value.problems
    field.input.value = 16
    assert field.message is None and field.error.layout.display == "none"
    assert not form.start_button.disabled and form.config.method.lora.r == 16


def test_cross_field_rule_is_marked_on_the_field_it_names():
    form = ConfigForm()
    form.set("method.name", "full")
    form.set("quantization.bits", 4)
    message = form.fields["quantization.bits"].message
    assert message and "4-bit" in message
    assert form.start_button.disabled
    form.set("quantization.bits", None)
    assert form.fields["quantization.bits"].message is None and form.valid


def test_text_fields_parse_numbers_yaml_and_empty():
    form = ConfigForm()
    steps = form.fields["training.max_steps"]
    steps.input.value = "abc"
    assert steps.message == expected_problem(RunConfig(), "training.max_steps", "abc")
    steps.input.value = "250"
    assert form.config.training.max_steps == 250
    steps.input.value = ""
    assert form.config.training.max_steps is None
    targets = form.fields["method.lora.target_modules"]
    targets.input.value = "[query, value"
    assert targets.message.startswith("not valid YAML") and form.start_button.disabled
    targets.input.value = "[query, value]"
    assert form.config.method.lora.target_modules == ["query", "value"]
    form.fields["data.columns"].input.value = "{text: review}"
    assert form.config.data.columns == {"text": "review"}
    form.fields["training.report_to"].input.value = ("tensorboard",)
    assert form.config.training.report_to == ["tensorboard"]


def test_start_hands_the_forms_config_to_the_controller():
    ctl = FakeController()
    form = ConfigForm()
    form.on_start(ctl.start)
    form.set("method.name", "dora")
    form.set("method.dora.r", 4)
    form.fields["training.max_steps"].input.value = "50"
    form.fields["training.learning_rate"].input.value = 0.003
    form.fields["method.dora.r"].input.value = 0
    form.start_button.click()  # invalid: nothing starts
    assert ctl.started == []
    form.fields["method.dora.r"].input.value = 4
    form.start_button.click()
    assert len(ctl.started) == 1
    sent = ctl.started[0]
    assert isinstance(sent, RunConfig)
    assert (sent.method.name, sent.method.dora.r, sent.training.max_steps, sent.training.learning_rate) == \
        ("dora", 4, 50, 0.003)
    assert sent.to_dict() == form.config.to_dict()


def _apply_cli(command: str) -> RunConfig:
    """What ``ftkit train --preset P --set a=b ...`` builds (values read as YAML)."""
    words = shlex.split(command)
    assert words[:2] == ["ftkit", "train"]
    preset = words[words.index("--preset") + 1]
    changes = {}
    for i, word in enumerate(words):
        if word == "--set":
            path, _, raw = words[i + 1].partition("=")
            changes[path] = yaml.safe_load(raw) if raw.strip() else ""
    config = RunConfig.preset(preset)
    return config.update(changes) if changes else config


@pytest.mark.parametrize("name", list(list_presets()))
def test_presets_load_and_the_cli_command_rebuilds_the_same_config(name):
    form = ConfigForm()
    form.preset.value = name
    assert form.config.to_dict() == RunConfig.preset(name).to_dict()
    assert form.cli() == f"ftkit train --preset {name}"
    form.fields["training.seed"].input.value = 7
    form.set("method.name", "dora")
    form.set("method.dora.lora_dropout", 0.2)
    form.fields["model.revision"].input.value = "main"
    command = form.cli()
    assert "--set training.seed=7" in command and "--set method.name=dora" in command
    assert _apply_cli(command).to_dict() == form.config.to_dict()


def test_the_cli_command_is_the_configs_own_and_the_form_shows_it():
    config = RunConfig.preset("demo").update({"method.name": "dora", "training.seed": 3})
    argv = config.cli_args()
    assert argv[:4] == ["ftkit", "train", "--preset", "demo"] and "training.seed=3" in argv
    assert not any(a.startswith("method.lora.") for a in argv)  # only the chosen method's options count
    assert _apply_cli(config.to_cli()).to_dict() == config.to_dict()
    form = ConfigForm(config)
    assert form.cli() == config.to_cli()


def test_cli_without_preset_picks_the_closest_and_rebuilds_the_config():
    form = ConfigForm()
    form.set("data.columns", {"text": "review text"})
    command = form.cli()
    assert _apply_cli(command).to_dict() == form.config.to_dict()
    assert form.cli("my config.yaml") == "ftkit train 'my config.yaml'"


def test_yaml_save_load_and_show_buttons(tmp_path):
    form = ConfigForm(preset="demo")
    form.set("method.lora.r", 12)
    form.path.value = str(tmp_path / "run.yaml")
    form.save_button.click()
    assert RunConfig.from_yaml(tmp_path / "run.yaml").to_dict() == form.config.to_dict()
    other = ConfigForm()
    other.path.value = str(tmp_path / "run.yaml")
    other.load_button.click()
    assert other.config.to_dict() == form.config.to_dict()
    form.yaml_button.click()
    assert form.text.layout.display == "block"
    assert yaml.safe_load(form.text.value) == form.config.to_dict()
    form.cli_button.click()
    assert form.text.value.startswith("ftkit train --preset demo --set method.lora.r=12")
    assert f"ftkit train {tmp_path / 'run.yaml'}" in form.text.value
    # a file with a bad value loads and is marked like a typed one
    (tmp_path / "bad.yaml").write_text("method:\n  name: lora\n  lora:\n    r: 0\ntraining:\n  bogus: 1\n")
    other.load(tmp_path / "bad.yaml")
    assert other.fields["method.lora.r"].message and other.start_button.disabled
    assert "training.bogus" in other.message.value
    form.set("method.lora.r", -1)
    form.save_button.click()
    assert "not saved" in form.message.value


# ---- the dashboard ---------------------------------------------------------------------


def test_dashboard_follows_events():
    run = FakeRun(demo())
    dash = Dashboard(run, interval=None)
    events = training_events(100, eval_every=25)
    cut = next(i for i, e in enumerate(events) if e.get("step") == 30 and e["type"] == "step") + 1
    for event in events[:cut]:  # status, started, 30 steps, an eval and samples at step 25
        run.emit(event)
    dash.flush()
    assert dash.stats["points"]["train loss"] == 30
    assert dash.stats["points"]["train loss (smoothed)"] == 30
    assert dash.progress.value == 30 and dash.progress.max == 100
    assert "step 30 / 100" in dash.progress_label.value and "ETA" in dash.progress_label.value
    assert ">running<" in dash.status_label.value
    assert "73,728 of 22,786,432" in dash.log_view.value
    assert len(dash.figure.data[dash._streams["loss"].index].x) == 30  # one curve, one trace
    assert dash.stats["points"]["eval loss"] == 1 and dash.stats["points"]["accuracy"] == 1
    assert "&lt;b&gt;kettle&lt;/b&gt;" in dash.samples_view.value  # sample text escaped
    assert not dash.pause_button.disabled and dash.resume_button.disabled
    for event in events[cut:]:
        run.emit(event)
    dash.flush()
    assert dash.status == "finished" and dash.progress.value == 100
    assert dash.summary_card.layout.display == "block" and "Run summary" in dash.summary_card.value
    assert "0.324 %" in dash.summary_card.value
    assert dash.stop_button.disabled and dash.pause_button.disabled and dash.save_button.disabled
    assert dash.stats["points"]["learning rate"] == 100 and dash.stats["points"]["accuracy"] == 4


def test_dashboard_buttons_call_the_run():
    run = FakeRun(demo())
    dash = Dashboard(run, interval=None)
    for event in training_events(50)[:12]:
        run.emit(event)
    dash.flush()
    dash.pause_button.click()
    assert run.calls == ["pause"] and dash.status == "paused"
    assert dash.pause_button.disabled and not dash.resume_button.disabled
    dash.resume_button.click()
    dash.save_button.click()
    dash.stop_button.click()
    assert run.calls == ["pause", "resume", "save_checkpoint", "stop"]
    dash.flush()
    assert "checkpoint at step 10" in dash.log_view.value
    assert dash.status == "stopping" and dash.stop_button.disabled


def test_dashboard_attaches_to_a_run_by_id_without_double_counting():
    ctl = FakeController()
    done = finished(demo(), run_id="done-run", max_steps=40)
    ctl.runs.append(done)
    dash = Dashboard.attach("done-run", ctl, interval=None)
    assert dash.status == "finished" and dash.stats["points"]["train loss"] == 40
    assert dash.summary_card.layout.display == "block"
    # a live run half-way: the backlog is drawn once, new events after it
    live = FakeRun(demo(), run_id="live-run")
    ctl.runs.append(live)
    events = training_events(60, eval_every=0)
    for event in events[:22]:
        live.emit(event)
    dash = Dashboard.attach("live-run", ctl, interval=None)
    live.emit(events[21])  # the last backlog event delivered late by the run's thread
    for event in events[22:40]:
        live.emit(event)
    dash.flush()
    assert dash.stats["points"]["train loss"] == 38 and dash.progress.value == 38
    dash.detach()
    assert live.subscribers == 0


def test_dashboard_throttles_updates_from_a_background_thread():
    run = FakeRun(demo())
    dash = Dashboard(run, interval=0.25)
    events = training_events(600, eval_every=100)

    def worker():
        for i, event in enumerate(events):
            run.emit(event)
            if i % 30 == 0:
                time.sleep(0.05)

    started = time.monotonic()
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 60
    while dash.status != "finished" and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = dash.stats
    assert stats["feed_error"] is None
    assert dash.status == "finished" and stats["points_total"]["train loss"] == 600
    assert stats["flushes"] <= elapsed / 0.25 + 3, (stats["flushes"], elapsed)


def test_bytes_per_update_stay_bounded_over_10000_steps():
    run = FakeRun(demo())
    dash = Dashboard(run, interval=None)
    events = training_events(10_000, eval_every=500, cuda=True)
    for i, event in enumerate(events):
        run.emit(event)
        if i % 10 == 0:  # about what a 0.25 s throttle gives at 40 steps/s
            dash.flush()
    dash.flush()
    stats = dash.stats
    by_step = stats["bytes_by_step"]
    early = [b for step, b in by_step if 5 <= step <= 15 and b]
    late = [b for step, b in by_step if step >= 9_000 and b]
    middle = [b for step, b in by_step if 2_000 <= step < 3_000 and b]
    assert all(n <= 400 + 100 for n in stats["points"].values()), stats["points"]
    assert stats["points_total"]["train loss"] == 10_000
    mean_late, mean_middle = sum(late) / len(late), sum(middle) / len(middle)
    assert max(late) < 40_000, max(late)  # each curve re-sent decimated, never the whole run
    assert mean_late < 1.5 * mean_middle  # no growth with the run's length
    print(f"\nbytes per update: step 10: {early[0]}; steps 9000-10000: mean {mean_late:.0f}, max {max(late)}; "
          f"steps 2000-3000: mean {mean_middle:.0f}; updates {stats['updates']}")


def test_empty_axes_show_0_to_1_then_fit_their_points_and_learning_rates_are_short():
    run = FakeRun(demo())
    dash = Dashboard(run, interval=None)
    layout = dash.figure.layout
    assert tuple(layout.yaxis3.range) == (0, 1) and layout.yaxis3.autorange is False  # not plotly's -1..4
    assert tuple(layout.xaxis3.range) == (0, 1) and layout.xaxis3.autorange is False
    assert layout.yaxis2.tickformat == ".3~e"  # 1.95e-3, not 0.00195 running into the loss plot
    for event in training_events(20):
        run.emit(event)
    dash.flush()
    assert layout.yaxis.autorange is True and layout.xaxis2.autorange is True  # points: the axes fit them
    assert dash.figure.layout.yaxis3.autorange is (True if dash.stats["points_total"].get("accuracy") else False)


def test_failed_run_shows_reason_and_log_tail():
    run = FakeRun(demo())
    run.logs = ["Traceback (most recent call last):", "MemoryError: out of memory"]
    dash = Dashboard(run, interval=None)
    run.emit(make_event("status", status="starting"))
    run.emit(make_event("ended", status="failed", reason="out of memory: lower training.batch_size",
                        summary={"status": "failed", "steps": 0}))
    dash.flush()
    assert dash.status == "failed"
    assert "out of memory: lower training.batch_size" in dash.summary_card.value
    assert "MemoryError" in dash.log_view.value


# ---- before training ------------------------------------------------------------------------


def test_data_preview_shows_rows_and_histogram():
    form = ConfigForm(preset="demo")
    rows = [{"text": "good <kettle>", "label": "positive"}, {"text": "bad", "label": "negative"}]
    result = {"columns": ["text", "label"], "num_train": 3, "num_eval": 1, "rows": rows, "lengths": [4, 7, 90],
              "token_lengths": {"min": 4, "median": 7, "p95": 90, "max": 90, "mean": 33.7, "truncated": 1}}
    seen = []
    preview = DataPreview(form, previewer=lambda config: seen.append(config) or result)
    preview.button.click()
    preview._thread.join(5)
    assert seen[0].to_dict() == form.config.to_dict()
    assert "good &lt;kettle&gt;" in preview.rows.value and "negative" in preview.rows.value
    assert "1</b>" not in preview.stats.value or "3</b> training rows" in preview.stats.value
    assert sum(preview.figure.data[0].y) == 3
    form.set("method.lora.r", 0)  # an invalid form says so instead of computing
    preview.compute(wait=True)
    assert "method.lora.r" in preview.message.value and len(seen) == 1


def test_model_summary_counts_in_the_background_and_caches():
    form = ConfigForm(preset="demo")
    calls = []

    def counter(config):
        calls.append(config.method.name)
        time.sleep(0.1)
        return {"model": config.model_name, "method": config.method.name, "bits": None, "total_params": 1000,
                "trainable_params": 10, "trainable_pct": 1.0}

    summary = ModelSummary(form, counter=counter)
    thread = summary.compute()
    assert summary.button.disabled  # busy while it counts
    thread.join(5)
    assert "<b>10</b> trainable of 1,000" in summary.card.value and not summary.button.disabled
    summary.compute(wait=True)
    form.set("training.seed", 3)  # does not change the model: cached
    summary.compute(wait=True)
    assert calls == ["lora"]
    form.set("method.name", "dora")
    summary.compute(wait=True)
    assert calls == ["lora", "dora"]


@pytest.mark.slow
def test_model_summary_and_preview_with_the_real_model():
    from ftkit.widgets.preview import parameter_counts

    config = demo()
    counts = parameter_counts(config)
    assert 0 < counts["trainable_params"] < counts["total_params"]
    assert counts["trainable_pct"] < 5
    full = parameter_counts(config.set("method.name", "full"))
    assert full["trainable_params"] == full["total_params"] >= counts["base_params"]
    preview = DataPreview(config)
    preview.compute(wait=True)
    assert preview.error is None, preview.error
    assert preview.result["num_train"] > 0 and preview.figure is not None


# ---- the comparison --------------------------------------------------------------------------


def _play_all(comparison, runs, steps=60):
    for i, run in enumerate(runs):
        run.play(training_events(steps, eval_every=20, s_per_step=0.1 * (i + 1), tokens_per_step=500 + 100 * i,
                                 trainable=1000 * (i + 1), total=100_000))
    comparison.flush()


def test_comparison_queues_one_run_per_method_on_the_same_setup():
    ctl = FakeController()
    base = demo()
    comp = Comparison(ctl, base, methods=["lora", "dora", "full"], interval=None, seeds=1, search="off")
    comp.concurrent.value = 2
    comp.run_button.click()
    assert len(ctl.queued) == 1
    configs, concurrent = ctl.queued[0]
    assert concurrent == 2 and [c.method.name for c in configs] == ["lora", "dora", "full"]
    for config in configs:
        for section in ("task", "data", "training", "model", "quantization", "distributed"):
            mine, theirs = config.to_dict()[section], base.to_dict()[section]
            if section == "training":  # the preset's learning rate was LoRA's: each method brings its own
                assert mine.pop("learning_rate") == (0.002 if config.method.name == "lora" else
                                                     config.method_spec.training_defaults["training.learning_rate"])
                theirs.pop("learning_rate")
            assert mine == theirs
    assert len(comp.runs) == 3 and all(run.subscribers == 1 for run in comp.runs)
    fixed = Comparison(FakeController(), base.set("training.learning_rate", 1e-3), methods=["lora", "full"],
                       interval=None).configs()
    assert [c.training.learning_rate for c in fixed] == [1e-3, 1e-3]  # the user's own value holds for all


def test_comparison_leaves_out_methods_that_do_not_fit():
    ctl = FakeController()
    base = demo().set("quantization.bits", 4)
    comp = Comparison(ctl, base, methods=["lora", "full", "no-such-method"], interval=None, seeds=1, search="off")
    assert "no-such-method" in comp.message.value
    comp.start()
    assert [c.method.name for c in ctl.queued[0][0]] == ["lora"]
    assert "full left out" in comp.message.value


def test_comparison_overlays_curves_and_fills_the_table(tmp_path):
    ctl = FakeController()
    comp = Comparison(ctl, demo(), methods=["lora", "dora", "full"], interval=None, seeds=1, search="off")
    runs = comp.start()
    _play_all(comp, runs)
    frame = comp.results()
    assert list(frame["method"]) == ["lora", "dora", "full"] or set(frame["method"]) == {"lora", "dora", "full"}
    assert set(frame["status"]) == {"finished"}
    row = frame.set_index("method").loc["dora"]
    assert row["trainable_params"] == 2000 and row["trainable_pct"] == 2.0
    assert row["s_per_step"] == pytest.approx(0.2) and row["final_metric"] == 1.0 and row["metric"] == "accuracy"
    assert row["peak_memory_mb"] > 0 and row["wall_s"] > 0
    by_speed = comp.results(sort_by="s_per_step", ascending=False)
    assert list(by_speed["method"]) == ["full", "dora", "lora"]
    comp.sort_by.value = "trainable_params"
    comp.descending.value = True
    assert comp.table.value.index(">full<") < comp.table.value.index(">lora<")
    # the x-axis switch redraws every curve against tokens or seconds
    entry = comp._entries[1]
    assert entry.streams["loss"].xy()[0][-1] == 60
    comp.x_axis.value = "tokens"
    assert entry.streams["loss"].xy()[0][-1] == 60 * 600
    assert comp.figure.layout.xaxis.title.text == "tokens seen"
    comp.set_x("seconds")
    assert entry.streams["loss"].xy()[0][-1] == pytest.approx(12.0)
    assert entry.streams["metric"].points == 3
    # exports
    comp.to_csv(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("row,method,") and lines[-1].startswith("verdict,\"Not enough seeds to tell")
    comp.to_html(tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert "<table" in text and "dora" in text and "Method comparison" in text
    assert len(text) > 1_000_000 and "cdn.plot.ly" not in text.split("<table", 1)[0]
    assert 'src="https://cdn' not in text  # plotly.js embedded: the report works offline


def _play_with(run, metric_value: float, **kwargs) -> None:
    events = training_events(20, eval_every=10, **kwargs)
    events[-1]["summary"]["metrics"].update(accuracy=metric_value, loss=1 - metric_value)
    run.play(events)


def test_comparison_runs_seeds_and_shows_the_verdict_with_bands(tmp_path):
    ctl = FakeController()
    comp = Comparison(ctl, demo(), methods=["lora", "ia3"], interval=None, seeds=3, search="off")
    comp.settings.budget.value = "20 steps"
    comp.run_button.click()
    configs = ctl.queued[0][0]
    assert [(c.method.name, c.training.seed) for c in configs] == [
        ("lora", 42), ("ia3", 42), ("lora", 43), ("ia3", 43), ("lora", 44), ("ia3", 44)]
    assert {c.training.max_steps for c in configs} == {20}
    assert "2 methods x 3 seeds, 20 steps each" in comp.message.value
    values = {"lora": [0.96, 0.95, 0.97], "ia3": [0.80, 0.82, 0.79]}
    for i, run in enumerate(comp.runs):
        _play_with(run, values[run.config.method.name][i // 2], trainable=4000 if i % 2 == 0 else 1000)
    comp.flush()
    assert "Welch" in comp.study_view.verdict.value and "ia3 is lower than lora" in comp.study_view.verdict.value
    assert "3 seeds" in comp.verdict() and "trains 4× fewer parameters" in comp.verdict()
    frame = comp.summary()
    assert list(frame["method"]) == ["lora", "ia3"] and list(frame["seeds"]) == [3, 3]
    assert frame["final_metric"][0] == pytest.approx(0.96) and frame["final_metric_pm"][0] > 0
    assert frame["verdict"][1].startswith("lower than lora") and "Welch" in frame.attrs["verdict"]
    assert "0.960 ± 0.025" in comp.study_view.table.value
    bands = [t for t in comp.study_view.figure.data if t.fill == "toself"]
    means = [t for t in comp.study_view.figure.data if t.name and "(3 seeds)" in t.name]
    assert len(bands) == 4 and len(means) == 4  # loss and metric, per method
    assert len(comp.results()) == 6  # every run below, one row each
    text = comp.to_html(tmp_path / "r.html").read_text()
    assert "ia3 is lower than lora" in text and "Environment" in text and "transformers" in text
    assert "ia3 is lower than lora" in (tmp_path / "r.html").read_text()
    assert "Welch" in comp.to_csv(tmp_path / "r.csv").read_text()


def test_comparison_searches_learning_rates_then_runs_at_the_chosen_ones():
    ctl = FakeController()
    comp = Comparison(ctl, demo(), methods=["lora"], interval=None, seeds=2, search="on")
    comp.settings.budget.value = "20 steps"
    tries = comp.start()
    assert [r.config.training.learning_rate for r in tries] == [0.0002, 0.002, 0.02]
    assert all(r.config.training.max_steps == 5 for r in tries)
    assert all(r.config.data.eval_source.endswith("search-val.jsonl") for r in tries)
    for run, value in zip(tries, (0.6, 0.9, 0.7)):
        _play_with(run, value)
    deadline = time.time() + 60
    while not (len(ctl.queued) == 2 and comp.study_view.figure is not None) and time.time() < deadline:
        time.sleep(0.02)
    finals = ctl.queued[1][0]
    assert [(c.training.learning_rate, c.training.seed, c.training.max_steps) for c in finals] == [
        (0.002, 42, 20), (0.002, 43, 20)]
    assert "learning rates chosen: lora 0.002" in comp.message.value
    search = [t for t in comp.study_view.figure.data if t.name == "lora search"]
    assert search and list(search[0].x) == [0.0002, 0.002, 0.02]


def test_comparison_adds_a_finished_run_from_disk(tmp_path):
    from ftkit.store import RunStore

    config = demo().set("method.name", "dora")
    record = RunStore(tmp_path).create(config)
    events = training_events(30, eval_every=10)
    with open(record.path / "events.jsonl", "w") as f:
        for event in events:
            f.write(json.dumps(event) + "\n")
    (record.path / "summary.json").write_text(json.dumps(events[-1]["summary"]))
    ctl = FakeController(runs_dir=str(tmp_path))  # it does not know the run: found on disk
    comp = Comparison(ctl, demo(), methods=["lora"], interval=None)
    comp.run_id.value = record.id
    comp.add_button.click()
    frame = comp.results()
    assert list(frame["run_id"]) == [record.id] and frame["status"][0] == "finished"
    assert frame["method"][0] == "dora" and frame["steps"][0] == 30
    assert comp._entries[0].streams["loss"].points == 30
    comp.add_run(record.id)  # adding twice keeps one row
    assert len(comp.results()) == 1


# ---- the app -------------------------------------------------------------------------------------


def test_app_starts_a_run_and_shows_its_dashboard():
    ctl = FakeController()
    app = App(controller=ctl, preset="demo", interval=None)
    app.form.set("training.max_steps", 30)
    app.form.start_button.click()
    assert [c.training.max_steps for c in ctl.started] == [30]
    run = ctl.runs[0]
    dash = app.dashboards[run.id]
    assert app.tabs.selected_index == 1 and app.dashboard_box.children == (dash,)
    for event in training_events(30):
        run.emit(event)
    dash.flush()
    assert dash.status == "finished" and dash.progress.value == 30
    app.comparison.seeds.value = 1
    app.comparison.search.value = "off"
    app.comparison.start(["lora", "dora"])
    assert [c.method.name for c in ctl.queued[0][0]] == ["lora", "dora"]
    assert [c.training.max_steps for c in ctl.queued[0][0]] == [30, 30]
    app.refresh()
    assert len(app.run_picker.options) == 3


def test_preset_row_fits_a_usual_notebook_width():
    form = ConfigForm(demo())
    row = [form.preset, form.path, form.load_button, form.save_button]

    def least(widget) -> int:  # the narrowest a flex row lets it be, in px
        layout = widget.layout
        for value in (layout.width, (layout.flex or "").split(" ")[-1] or None):
            if value and value.endswith("px"):
                return int(value[:-2])
        return 148 if isinstance(widget, widgets.Button) and layout.width != "auto" else 110
    assert sum(least(w) for w in row) + 4 * 4 <= 740  # Save YAML stays on the preset row at ~800 px


def test_app_runs_tab_follows_the_run_to_its_end():
    ctl = FakeController()
    app = App(controller=ctl, preset="demo", interval=None)
    app.form.start_button.click()
    run = ctl.runs[0]  # the fake's own status stays "starting", as a run's handle may lag its events
    assert app.run_picker.options[0][0].endswith("(starting)")
    for event in training_events(20):
        run.emit(event)
    app.dashboards[run.id].flush()
    assert app.run_picker.options[0][0] == f"{run.id} (finished)" and app.run_picker.value == run.id


def test_app_reports_a_refused_start():
    class Refusing(FakeController):
        def start(self, config):
            raise ConfigError([("distributed.num_processes", "needs 4 GPUs, found 0")])

    app = App(controller=Refusing(), interval=None)
    app.form.start_button.click()
    assert "needs 4 GPUs" in app.message.value and app.dashboards == {}


def test_estimate_panel_follows_the_form():
    from ftkit.config import RunConfig
    from ftkit.widgets import ConfigForm, EstimatePanel

    form = ConfigForm(RunConfig.preset("phi3-mini-qlora"))
    panel = EstimatePanel(form, device="A100-80GB", gpus=1, gpu_memory_gb=24)
    assert panel.estimate is not None and panel.estimate.fits
    assert "fits on 1 x 24 GiB" in panel.output.value
    qlora_peak = panel.estimate.peak_gb
    form.set("method.name", "full")  # a 4-bit base cannot train in full: the form is invalid
    assert panel.estimate is None and "fix the form" in panel.output.value
    form.set("quantization.bits", None)
    assert panel.estimate is not None and not panel.estimate.fits
    assert panel.estimate.peak_gb > qlora_peak and "does not fit" in panel.output.value


def test_dashboard_shows_memory_per_rank_and_per_node():
    from ftkit.runstate import RunState
    from ftkit.widgets.dashboard import memory_text

    state = RunState()
    assert memory_text(state) == ""
    state.apply({"type": "step", "step": 1, "loss": 1.0, "rank_rss_mb": [510.2, 530.0], "rank_nodes": [0, 1]})
    assert memory_text(state) == " &middot; RSS per rank 510 / 530 MB &middot; per node 0: 510 MB, 1: 530 MB"
    state.apply({"type": "step", "step": 2, "loss": 1.0, "rank_rss_mb": [500.0, 520.0, 10.0]})
    assert state.node_rss_mb == {0: 500.0, 1: 520.0}


def test_the_distributed_section_shows_each_launchers_own_fields():
    form = ConfigForm()
    shown = lambda path: form.fields[path].box.layout.display != "none"  # noqa: E731
    assert not shown("distributed.slurm.partition") and shown("distributed.hostfile")
    form.fields["distributed.launcher"].input.value = "slurm"
    assert shown("distributed.slurm.partition") and shown("distributed.slurm.time")
    assert not shown("distributed.hostfile") and not shown("distributed.rendezvous_timeout")
    form.fields["distributed.slurm.time"].input.value = "02:00:00"
    assert form.valid and form.config.distributed.slurm.time == "02:00:00"
    form.fields["distributed.launcher"].input.value = "torchrun"
    assert shown("distributed.rendezvous_timeout") and not shown("distributed.slurm.nodes")


@pytest.mark.slow
def test_app_with_no_preset_learns_in_the_kernel_thread_and_leaks_no_warnings(tmp_path, capfd):
    """Start from a bare App() trains a config that learns; ftkit's own calls warn nothing into the notebook."""
    import warnings

    from ftkit.controller import Controller

    app = App(controller=Controller(runs_dir=str(tmp_path)), interval=None)
    app.form.set("training.max_steps", 40)
    app.form.set("training.eval_steps", 40)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what a notebook shows: all but deprecations from library code
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        app.form.start_button.click()
        run = app.controller.runs[-1]
        app.controller.wait(timeout=600)
    err = capfd.readouterr().err
    summary = run.summary or {}
    assert run.status == "finished", run.status
    assert summary["metrics"]["accuracy"] >= 0.8, summary["metrics"]  # chance is about 0.5
    ours = sorted({f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught})
    assert not ours, ours
    assert "Warning" not in err and "warn" not in err.lower(), err
