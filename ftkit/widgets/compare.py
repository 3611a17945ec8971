"""``Comparison``: several methods on the same task and data, over k seeds, under one budget, with a verdict.

Pressing Run builds a ``ftkit.comparison.Study``: optionally a learning-rate
search per method on held-out training rows, then every method x seed at its
chosen rate through ``controller.queue`` (seed i of every method trains with
the same seed, so the same data order). The study view shows the verdict in
words with its uncertainty, a per-method table (mean ± 95 % interval over
seeds) and the mean curves with bands against the budget's axis; below it
every run's own curves overlay live with step, tokens seen or seconds on the
x-axis. ``results()`` is the per-run DataFrame, ``summary()`` the per-method
one (``attrs['verdict']``); ``to_csv`` and ``to_html`` (an offline report
with the plots, versions, machine and settings) carry the verdict.
"""
from __future__ import annotations

import collections
import html
import threading
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import ipywidgets as widgets
from plotly.subplots import make_subplots

from ..errors import ConfigError
from ..methods import methods as METHODS
from . import _runs
from ._compare_entry import Entry
from ._compare_report import report_html
from ._feed import EventFeed
from ._html import table
from ._plot import PALETTE, Meter, add_stream, figure_widget, fit_width, push
from ._study import StudySettings, StudyView
from .preview import resolve_config

DEFAULT_METHODS = ("lora", "dora", "qlora", "ia3", "full")
X_AXES = {"step": "step", "tokens": "tokens seen", "seconds": "seconds"}
COLUMNS = ["run_id", "method", "status", "steps", "trainable_params", "trainable_pct", "peak_memory_mb",
           "s_per_step", "tokens_per_s", "metric", "final_metric", "final_eval_loss", "final_train_loss", "wall_s"]


class Comparison(widgets.VBox):
    """Train ``base_config`` with each of ``methods`` and compare them side by side."""

    def __init__(self, controller: Any = None, base_config: Any = None, methods: Iterable[str] = DEFAULT_METHODS, *,
                 concurrent: int = 1, x: str = "step", interval: Optional[float] = 0.25,
                 max_points: int = 400, tail_points: int = 100, seeds: int = 0, budget: str = "",
                 minutes: float = 10.0, search: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.add_class("ftkit-comparison")
        self.controller = controller
        self.base = base_config
        self._kw = dict(max_points=max_points, tail_points=tail_points)
        self._entries: list[Entry] = []
        self._lock = threading.RLock()
        self._feed = EventFeed(self._handle, interval)
        self._updates = 0
        self._history: collections.deque = collections.deque(maxlen=100_000)  # bytes per update
        self.notes: list[str] = []
        self.study: Any = None
        self._thread: Optional[threading.Thread] = None
        self._study_dirty = False
        self._colors: dict[str, str] = {}
        self.settings = StudySettings(seeds, budget, minutes, search)
        self.seeds, self.search = self.settings.seeds, self.settings.search
        known = METHODS.names()
        wanted = list(methods)
        missing = [m for m in wanted if m not in known]
        if missing:
            self.notes.append(f"not registered here, left out: {', '.join(missing)}")
        self._metric = self._metric_name()
        self._build([m for m in wanted if m in known], known, concurrent, x)

    # ---- layout -------------------------------------------------------------

    def _metric_name(self) -> Optional[str]:
        try:
            return resolve_config(self.base).task_spec.metric if self.base is not None else None
        except Exception:
            return None

    def _build(self, chosen: list[str], known: list[str], concurrent: int, x: str) -> None:
        self.methods = widgets.SelectMultiple(
            options=[(f"{METHODS.get(m).title} ({m})", m) for m in known], value=tuple(chosen),
            rows=min(8, len(known)), description="methods", style={"description_width": "70px"},
        )
        self.concurrent = widgets.BoundedIntText(value=concurrent, min=1, max=16, description="at once",
                                                 style={"description_width": "60px"},
                                                 layout=widgets.Layout(width="140px"))
        self.run_button = widgets.Button(description="Run comparison", icon="play", button_style="success",
                                         layout=widgets.Layout(width="auto"))
        self.run_button.add_class("ftkit-compare-run")
        self.run_button.on_click(lambda _: self.start())
        self.x_axis = widgets.ToggleButtons(options=[(v, k) for k, v in X_AXES.items()], value=x,
                                            description="x-axis", style={"button_width": "auto"})
        self.x_axis.observe(lambda change: self.set_x(change["new"]), "value")
        titles = ("train loss (smoothed)", "eval loss", self._metric or "eval metric")
        fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.07)
        fig.update_layout(height=360, margin=dict(l=40, r=10, t=40, b=40), uirevision="keep",
                          legend=dict(orientation="h", y=-0.2))
        self.figure = figure_widget(fig)
        self._meter = Meter(self.figure)
        self._label_axes(x)
        self.sort_by = widgets.Dropdown(options=COLUMNS, value="run_id", description="sort by",
                                        style={"description_width": "60px"}, layout=widgets.Layout(width="260px"))
        self.descending = widgets.Checkbox(value=False, description="descending", indent=False)
        self.sort_by.observe(lambda _: self._render_table(), "value")
        self.descending.observe(lambda _: self._render_table(), "value")
        self.table = widgets.HTML()
        self.table.add_class("ftkit-compare-table")
        self.run_id = widgets.Text(placeholder="run id", description="add run", style={"description_width": "60px"})
        self.add_button = widgets.Button(description="Add from disk", icon="plus", layout=widgets.Layout(width="auto"))
        self.add_button.on_click(lambda _: self._add_clicked())
        self.export_path = widgets.Text(value="comparison", description="export", style={"description_width": "60px"})
        self.csv_button = widgets.Button(description="Save CSV", icon="table", layout=widgets.Layout(width="auto"))
        self.html_button = widgets.Button(description="Save HTML report", icon="file",
                                          layout=widgets.Layout(width="auto"))
        self.csv_button.on_click(lambda _: self._export("csv"))
        self.html_button.on_click(lambda _: self._export("html"))
        self.message = widgets.HTML()
        self.study_view = StudyView()
        self.children = [
            widgets.HBox([self.methods, widgets.VBox([self.concurrent, self.run_button])]),
            self.settings, self.message, self.study_view,
            widgets.HTML("<b>Every run, live</b>"), self.x_axis, self.figure,
            widgets.HBox([self.sort_by, self.descending]), self.table,
            widgets.HBox([self.run_id, self.add_button]),
            widgets.HBox([self.export_path, self.csv_button, self.html_button]),
        ]
        self._render_message()
        self._render_table()

    def _label_axes(self, x: str) -> None:
        with self.figure.batch_update():
            for i in range(1, 4):
                self.figure.layout[f"xaxis{'' if i == 1 else i}"].title = X_AXES[x]

    # ---- starting and adding runs ------------------------------------------------

    def configs(self, methods: Optional[Iterable[str]] = None) -> list:
        """The configs the comparison trains: the base with only ``method.name`` changed.

        A value the base's user did not set (a preset's or default learning rate) follows each
        method, as it would in the form; one the user set stays the same for every method.
        """
        base = resolve_config(self.base)
        out = []
        for name in methods if methods is not None else self.methods.value:
            label = f"{(base.name or 'compare')[:48]}-{name}"
            try:
                out.append(base.update({"method.name": name, "name": label}))
            except ConfigError as exc:
                self.notes.append(f"{name} left out: " + "; ".join(f"{p}: {m}" for p, m in exc.problems))
        return out

    def start(self, methods: Optional[Iterable[str]] = None) -> list:
        """Plan a study (seeds, budget, search) and queue it through the controller; returns the runs queued now.

        Without a search every run is queued at once; with one, the search runs are queued now and the
        full runs follow from a background thread once the search has chosen each method's rate.
        """
        from ..comparison import Study

        self.notes = []
        chosen = list(methods if methods is not None else self.methods.value)
        if not chosen:
            self.notes.append("nothing to run: choose at least one method that fits the base config")
            self._render_message()
            return []
        if self.controller is None:
            from ..controller import Controller

            self.controller = Controller()
        try:
            base = resolve_config(self.base)
            study = Study(base, chosen, controller=self.controller, concurrent=self.concurrent.value,
                          on_run=self._study_run, **self.settings.study_kwargs())
        except ConfigError as exc:
            self.notes.append(f"the comparison has problems: {exc}")
            self._render_message()
            return []
        self.notes.extend(study.notes)
        if not study.configs:
            self.notes.append("nothing to run: choose at least one method that fits the base config")
            self._render_message()
            return []
        self.study = study
        runs = study.start_search() if study.search else study.start_final()
        plan = (f"{len(study.configs)} methods x {len(study.seeds)} seeds, {study.budget.describe()} each, "
                f"{self.concurrent.value} at a time")
        if study.search:
            self.notes.append(f"queued {len(runs)} learning-rate tries on held-out rows; then {plan}")
            self._thread = threading.Thread(target=self._after_search, args=(study,), daemon=True, name="ftkit-study")
            self._thread.start()
        else:
            self.notes.append(f"queued {len(runs)} runs: {plan}")
        self._render_message()
        return runs

    def _after_search(self, study: Any) -> None:
        try:
            chosen = study.finish_search()
            self.notes.append("learning rates chosen: " + ", ".join(f"{k} {v:.2g}" for k, v in chosen.items()))
            if not study._stop.is_set():
                study.start_final()
        except Exception as exc:  # shown, never raised into a thread nobody reads
            self.notes.append(f"the comparison stopped: {type(exc).__name__}: {exc}")
        self._render_message()
        with self._lock:
            self.study_view.render(study)

    def _study_run(self, run: Any, entry: dict) -> None:
        label = (f"{entry['arm']} lr {entry['lr']:.2g}" if entry["phase"] == "search"
                 else f"{entry['arm']} seed {entry['seed']}")
        color = self._colors.setdefault(entry["arm"], PALETTE[len(self._colors) % len(PALETTE)])
        self.add(run, label=label, color=color)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Block until the study's search and every full run have ended, then redraw its view."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.study is not None:
            self.study.wait(timeout)
            self.flush()
            with self._lock:
                self.study_view.render(self.study)

    def verdict(self) -> str:
        """The study's verdict in words (with the test and the number of seeds)."""
        return self.study.verdict()["text"] if self.study is not None else "no comparison has run yet"

    def summary(self):
        """One row per method: mean and ± half width of the 95 % interval of each column, and its verdict."""
        if self.study is None:
            raise ValueError("no comparison has run yet: press Run comparison or call start()")
        return self.study.frame()

    def add_run(self, run_id: str) -> Any:
        """Add a run (finished or not) by id, from the controller or from the runs folder on disk."""
        run = None
        if self.controller is not None:
            try:
                run = self.controller.get(run_id)
            except KeyError:
                run = None
        if run is None:
            from ..store import RunStore

            runs_dir = getattr(self.controller, "runs_dir", None)
            run = RunStore(runs_dir).get(run_id)
        return self.add(run)

    def add(self, run: Any, label: Optional[str] = None, color: Optional[str] = None) -> Any:
        """Overlay a run object (a controller's ``Run`` or a ``RunRecord``)."""
        with self._lock:
            if any(e.run is run or _runs.run_id(e.run) == _runs.run_id(run) for e in self._entries):
                return run
            config = _runs.config(run)
            if self._metric is None and config is not None:
                self._metric = config.task_spec.metric
                self.figure.layout.annotations[2].text = self._metric
            label = label or (config.method.name if config is not None else _runs.run_id(run))
            if any(e.label == label for e in self._entries):
                label = f"{label} ({_runs.run_id(run)[-4:]})"
            entry = Entry(run, label, color or PALETTE[len(self._entries) % len(PALETTE)])
            for col, key in enumerate(("loss", "eval_loss", "metric"), start=1):
                entry.streams[key] = add_stream(
                    self.figure, label, row=1, col=col, color=entry.color, showlegend=col == 1,
                    legendgroup=label, mode="lines" if key == "loss" else "lines+markers", **self._kw)
            self._entries.append(entry)
            subscribe = getattr(run, "subscribe", None)
            if callable(subscribe):
                entry.unsubscribe = subscribe(lambda event, entry=entry: self._feed.put((entry, event, True)))
            backlog = _runs.events(run)
            entry.replayed = {_runs.event_key(e) for e in backlog[-256:]}
            self._handle([(entry, e, False) for e in backlog])
        return run

    def _add_clicked(self) -> None:
        run_id = self.run_id.value.strip()
        try:
            self.add_run(run_id)
            self.notes = [f"added {run_id}"]
        except (KeyError, OSError, ConfigError) as exc:
            self.notes = [f"cannot add {run_id!r}: {exc}"]
        self._render_message()

    # ---- events -------------------------------------------------------------------

    def flush(self) -> int:
        return self._feed.flush()

    def _handle(self, items: list[tuple]) -> None:
        with self._lock:
            axis = self.x_axis.value
            before = [e.status for e in self._entries]
            for entry, event, live in items:
                if live and entry.replayed:
                    key = _runs.event_key(event)
                    if key in entry.replayed:  # already drawn from the backlog
                        entry.replayed.discard(key)
                        continue
                if entry.apply(event, axis, self._metric):
                    self._study_dirty = True
            push(self.figure, [s for e in self._entries for s in e.streams.values()])
            self._updates += 1
            self._history.append(self._meter.take())
            self._render_table()
            if [e.status for e in self._entries] != before:
                self.fit()
            if self._study_dirty and self.study is not None:
                self._study_dirty = False
                self.study_view.render(self.study)

    def fit(self) -> None:
        """Size the plot to the width the page gives it (done when a run's status changes)."""
        fit_width(self.figure)

    def set_x(self, axis: str) -> None:
        """Re-draw every curve against ``axis``: step, tokens or seconds."""
        if axis not in X_AXES:
            raise ValueError(f"x-axis must be one of {', '.join(X_AXES)}")
        with self._lock:
            if self.x_axis.value != axis:
                self.x_axis.value = axis  # its observer calls back here
                return
            for entry in self._entries:
                entry.streams["loss"].reset([entry.x_of(axis, *r[:3]) for r in entry.steps], [r[3] for r in entry.steps])
                evals = [(entry.x_of(axis, *ev[:3]), ev[3]) for ev in entry.evals]
                entry.streams["eval_loss"].reset([x for x, m in evals if m.get("loss") is not None],
                                                 [m["loss"] for x, m in evals if m.get("loss") is not None])
                entry.streams["metric"].reset([x for x, m in evals if m.get(self._metric) is not None],
                                              [m[self._metric] for x, m in evals if m.get(self._metric) is not None])
            with self.figure.batch_update():
                push(self.figure, [s for e in self._entries for s in e.streams.values()])
                self._label_axes(axis)

    # ---- results --------------------------------------------------------------------

    def results(self, sort_by: Optional[str] = None, ascending: Optional[bool] = None):
        """The results table as a pandas DataFrame, one row per run."""
        import pandas as pd

        with self._lock:
            rows = [e.row(self._metric) for e in self._entries]
        frame = pd.DataFrame(rows, columns=COLUMNS)
        key = sort_by or self.sort_by.value
        if key and len(frame):
            up = (not self.descending.value) if ascending is None else ascending
            frame = frame.sort_values(key, ascending=up, na_position="last", kind="stable").reset_index(drop=True)
        return frame

    def to_csv(self, path: Union[str, Path]) -> Path:
        """The study's CSV (a row per method with its verdict, a row per run, the verdict); else the runs."""
        path = Path(path).expanduser()
        if self.study is not None:
            return self.study.to_csv(path)
        self.results().to_csv(path, index=False)
        return path

    def to_html(self, path: Union[str, Path]) -> Path:
        """A standalone report (plotly.js embedded, works offline): setup, results table and the curves."""
        path = Path(path).expanduser()
        if self.study is not None:
            return self.study.to_html(path)
        try:
            base = resolve_config(self.base) if self.base is not None else None
        except Exception:
            base = None
        path.write_text(report_html(self.results(), base, self.figure, X_AXES[self.x_axis.value]), encoding="utf-8")
        return path

    def _export(self, kind: str) -> None:
        stem = self.export_path.value.strip() or "comparison"
        target = stem if stem.endswith("." + kind) else f"{stem}.{kind}"
        try:
            written = self.to_csv(target) if kind == "csv" else self.to_html(target)
            self.notes = [f"saved {written}"]
        except OSError as exc:
            self.notes = [f"cannot save {target}: {exc}"]
        self._render_message()

    # ---- drawing ------------------------------------------------------------------------

    def _render_table(self) -> None:
        frame = self.results()
        rows = frame.to_dict("records")
        columns = [c for c in COLUMNS if c != "metric"]
        if self._metric:
            for row in rows:
                row[f"final {self._metric}"] = row.pop("final_metric")
            columns[columns.index("final_metric")] = f"final {self._metric}"
        # a wide table scrolls sideways in its own box (width 0 + min-width 100 % keeps it from widening the view)
        self.table.value = (
            "<div style='overflow-x:auto;width:0;min-width:100%'>"
            + table(rows, columns, css_class="ftkit-results", nowrap=True) + "</div>"
            if rows else "<i>No runs yet.</i>")

    def _render_message(self) -> None:
        self.message.value = "".join(f"<div>{html.escape(n)}</div>" for n in self.notes)

    @property
    def runs(self) -> list:
        return [e.run for e in self._entries]

    @property
    def stats(self) -> dict:
        return {
            "updates": self._updates,
            "bytes_last": self._history[-1] if self._history else 0,
            "bytes_max": max(self._history) if self._history else 0,
            "points": {f"{e.label}:{k}": s.points for e in self._entries for k, s in e.streams.items()},
        }

    def detach(self) -> None:
        for entry in self._entries:
            if entry.unsubscribe is not None:
                try:
                    entry.unsubscribe()
                except Exception:
                    pass
                entry.unsubscribe = None
        self._feed.close()

    def close(self) -> None:
        self.detach()
        super().close()
