"""The comparison's settings (seeds, budget, time budget, learning-rate search) and its study view:
the verdict in words, the per-method table (mean ± 95 % interval over seeds) and the mean curves with
their bands and the search curve. The numbers come from ``ftkit.comparison``; this only draws them."""
from __future__ import annotations

import html
from typing import Any, Optional

import ipywidgets as widgets

from ._plot import figure_widget

SEARCH_CHOICES = [("auto (if the time budget allows)", "auto"), ("on", "on"), ("off", "off")]


class StudySettings(widgets.HBox):
    """Seeds (0: as many as fit the time budget), the equal budget, the time budget and the search switch."""

    def __init__(self, seeds: int = 0, budget: str = "", minutes: float = 10.0, search: str = "auto"):
        narrow = {"description_width": "60px"}
        self.seeds = widgets.BoundedIntText(value=seeds, min=0, max=50, description="seeds", style=narrow,
                                            tooltip="seeds per method; 0 picks as many as fit the time budget",
                                            layout=widgets.Layout(width="130px"))
        self.budget = widgets.Text(value=budget, description="budget", style=narrow,
                                   placeholder="200 steps | 2e5 tokens | 90s | 1e15 flops",
                                   layout=widgets.Layout(width="260px"))
        self.minutes = widgets.BoundedFloatText(value=minutes, min=0.1, max=10_000, description="time (min)",
                                                style={"description_width": "75px"},
                                                layout=widgets.Layout(width="160px"))
        self.search = widgets.Dropdown(options=SEARCH_CHOICES, value=search, description="lr search",
                                       style=narrow, layout=widgets.Layout(width="300px"))
        super().__init__([self.seeds, self.budget, self.minutes, self.search])
        self.add_class("ftkit-study-settings")

    def study_kwargs(self) -> dict:
        return {"seeds": self.seeds.value or None, "budget": self.budget.value.strip() or None,
                "time_budget_s": self.minutes.value * 60,
                "search": {"auto": None, "on": True, "off": False}[self.search.value]}


class StudyView(widgets.VBox):
    """Verdict, per-method table and mean curves of a ``Study``; ``render(study)`` redraws them."""

    def __init__(self):
        self.verdict = widgets.HTML("<i>The verdict appears when runs have finished.</i>")
        self.verdict.add_class("ftkit-verdict")
        self.table = widgets.HTML()
        self.table.add_class("ftkit-study-table")
        self.plot_box = widgets.VBox()
        self.figure: Optional[Any] = None
        super().__init__([self.verdict, self.table, self.plot_box])
        self.add_class("ftkit-study")

    def render(self, study: Any) -> None:
        from ..comparison import report

        v = study.verdict()
        style = "background:#f6f8fa;border-left:4px solid #2ca02c;padding:4px 12px;margin:4px 0"
        self.verdict.value = (f"<div style='{style}'><b>Verdict</b>"
                              + "".join(f"<div>{html.escape(line)}</div>" for line in v["lines"]) + "</div>")
        self.table.value = ("<div style='overflow-x:auto;width:0;min-width:100%'>"
                            + report.table_html(study).replace(
                                "<table class='ftkit-study-table'>",
                                "<table class='ftkit-study-table' style='border-collapse:collapse;font-size:0.9em'>")
                            .replace("<td>", "<td style='border:1px solid #ddd;padding:2px 6px;white-space:nowrap'>")
                            .replace("<th>", "<th style='border:1px solid #ddd;padding:2px 6px;background:#f3f3f3'>")
                            + "</div>")
        fig = report.figure(study)
        self.figure = figure_widget(fig)
        self.plot_box.children = [self.figure] if isinstance(self.figure, widgets.DOMWidget) else []
