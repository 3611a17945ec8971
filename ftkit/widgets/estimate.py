"""``EstimatePanel``: the form's live memory estimate and verdict for a GPU budget.

Re-estimated on every valid change of the form (the estimator is pure
arithmetic on the model's config.json, about 10 ms), so the user sees
"fits" or "does not fit, first change X" before pressing Start.
"""
from __future__ import annotations

import html
from typing import Any, Optional

import ipywidgets as widgets

from ..estimator import DEVICES, estimate


class EstimatePanel(widgets.VBox):
    def __init__(self, form: Any, device: str = "A100-80GB", gpus: Optional[int] = None,
                 gpu_memory_gb: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.add_class("ftkit-estimate")
        self.form = form
        small = {"style": {"description_width": "initial"}, "layout": widgets.Layout(width="190px")}
        self.device = widgets.Dropdown(options=list(DEVICES), value=device, description="device", **small)
        self.gpus = widgets.IntText(value=gpus or 0, description="GPUs (0: from config)", **small)
        self.memory = widgets.FloatText(value=gpu_memory_gb or 0, description="GiB each (0: device's)", **small)
        for w in (self.device, self.gpus, self.memory):
            w.observe(lambda _: self.refresh(), "value")
        self.output = widgets.HTML()
        self.estimate = None
        self.children = [widgets.HBox([self.device, self.gpus, self.memory]), self.output]
        form.on_change(lambda config, problems: self.refresh(config))
        self.refresh()

    def refresh(self, config: Any = None) -> None:
        config = config if config is not None else (self.form.config if self.form.valid else None)
        if config is None:
            self.estimate, self.output.value = None, "<i>estimate: fix the form first</i>"
            return
        try:
            self.estimate = estimate(config, gpus=self.gpus.value or None,
                                     gpu_memory_gb=self.memory.value or None, device=self.device.value)
        except Exception as exc:  # a model whose config.json cannot be read here
            self.estimate = None
            self.output.value = f"<i>no estimate: {html.escape(str(exc).splitlines()[-1])}</i>"
            return
        e = self.estimate
        color = {"fits": "#2e7d32", "tight": "#ef6c00"}.get(e.fit, "#c62828")
        parts = [f"<b>estimate</b>: peak {e.peak_gb:.2f} GiB per device ({e.peak_phase}), "
                 f"{e.trainable_params:,} trainable "
                 f"({100 * e.trainable_share:.3f} %), ~{e.seconds_per_step:.2g} s per step on {html.escape(e.device)}",
                 f"<span style='color:{color}'>{html.escape(e.verdict)}</span>"]
        self.output.value = "<br>".join(parts)
