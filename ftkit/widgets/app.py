"""``App``: form, previews, live dashboards and the method comparison in one place.

Each part is its own widget and works alone; the app only wires them:
Start in the form starts a run on the controller and opens its dashboard.
"""
from __future__ import annotations

import html
from typing import Any, Optional

import ipywidgets as widgets

from . import _plot, _runs
from .compare import Comparison
from .dashboard import Dashboard
from .estimate import EstimatePanel
from .form import ConfigForm
from .handoff import HandoffPanel
from .preview import DataPreview, ModelSummary


class _LazyController:
    """Stands for the app's controller, which is only created when first used."""

    def __init__(self, app: "App"):
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app.controller, name)


#: what the App opens with when given neither a config nor a preset: a run that learns on the built-in
#: data in a few dozen steps (the bare defaults' learning rate is one for large models)
DEFAULT_PRESET = "demo"


class App(widgets.VBox):
    def __init__(self, controller: Any = None, config: Any = None, *, preset: Optional[str] = None,
                 methods: Optional[list[str]] = None, interval: Optional[float] = 0.25,
                 plots: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self._plots = plots  # "auto" | "figurewidget" | "static" for every plot of the App (see ``_plot.Plot``)
        self.add_class("ftkit-app")
        self._controller = controller
        self._interval = interval
        if config is None and preset is None:
            preset = DEFAULT_PRESET  # RunConfig()'s bare defaults do not learn the embedded data in a short run
        self.form = ConfigForm(config, preset=preset)
        self.data_preview = DataPreview(self.form, plots=plots)
        self.model_summary = ModelSummary(self.form)
        self.estimate = EstimatePanel(self.form)
        self.form.on_start(self.start)
        self.dashboards: dict[str, Dashboard] = {}
        self.message = widgets.HTML()
        self.run_picker = widgets.Dropdown(description="run", options=[], style={"description_width": "40px"},
                                           layout=widgets.Layout(width="480px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.attach_button = widgets.Button(description="Show", icon="eye")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.attach_button.on_click(lambda _: self.show(self.run_picker.value) if self.run_picker.value else None)
        self.dashboard_box = widgets.VBox([])
        extra = {"methods": methods} if methods else {}
        with _plot.using(plots):
            self.comparison = Comparison(_LazyController(self), self.form, interval=interval, **extra)
        before = widgets.Accordion(
            children=[self.data_preview, self.model_summary], titles=("Data preview", "Model and parameters"))
        configure = widgets.VBox([self.form, self.estimate, before])
        runs = widgets.VBox([widgets.HBox([self.run_picker, self.attach_button, self.refresh_button]),
                             self.dashboard_box])
        self.handoff = HandoffPanel(self.form, auto=False)  # builds its preview when its tab is first shown
        self.tabs = widgets.Tab(children=[configure, runs, self.comparison, self.handoff],
                                titles=("Configure", "Runs", "Compare", "Run elsewhere"))
        self.tabs.observe(self._tab_shown, "selected_index")
        self.children = [self.message, self.tabs]

    def _tab_shown(self, change) -> None:
        """Plots drawn while their tab was hidden take the tab's width once it shows."""
        if change["new"] == 1:
            for dashboard in self.dashboard_box.children:
                dashboard.fit()
        elif change["new"] == 2:
            self.comparison.fit()
        elif change["new"] == 3:
            self.handoff.refresh()

    @property
    def controller(self) -> Any:
        if self._controller is None:
            from ..controller import Controller

            self._controller = Controller()
        return self._controller

    def start(self, config: Any) -> Any:
        """Start a run of ``config`` and show its dashboard (what the form's Start button does)."""
        try:
            run = self.controller.start(config)
        except Exception as exc:  # a refused config or a failed launch: say so, keep the app alive
            self.message.value = f"<span style='color:#c62828'>&#9888; could not start: {html.escape(str(exc))}</span>"
            return None
        self.message.value = ""
        self.show(run)
        return run

    def show(self, run: Any) -> Dashboard:
        """Show the dashboard of ``run`` (a run or a run id) in the Runs tab."""
        run = _runs.resolve(run, self.controller)
        key = _runs.run_id(run)
        if key not in self.dashboards:
            self.dashboards[key] = Dashboard(run, interval=self._interval, plots=self._plots)
            self.dashboards[key].on_status(lambda _: self.refresh(select=self.run_picker.value))
        self.dashboard_box.children = [self.dashboards[key]]
        self.refresh(select=key)
        self.tabs.selected_index = 1
        return self.dashboards[key]

    def _status_of(self, run: Any) -> str:
        """The status a run's dashboard has drawn from its events, else the run's own."""
        dashboard = self.dashboards.get(_runs.run_id(run))
        return dashboard.status if dashboard is not None else _runs.status(run, "?")

    def refresh(self, select: Optional[str] = None) -> None:
        runs = list(getattr(self.controller, "runs", []) or [])
        options = [(f"{_runs.run_id(r)} ({self._status_of(r)})", _runs.run_id(r)) for r in runs]
        if select and select not in [v for _, v in options]:
            options.append((select, select))
        self.run_picker.options = options
        if select:
            self.run_picker.value = select
