"""Before training: ``DataPreview`` (first rows, token lengths) and ``ModelSummary`` (parameter counts).

Both compute in a background thread when their button is pressed, and import
the training stack only inside that thread, so importing the widgets stays light.
"""
from __future__ import annotations

import json
import math
import threading
import traceback
from typing import Any, Callable, Optional

import ipywidgets as widgets
import plotly.graph_objects as go

from ..errors import ConfigError
from ._html import esc, number, table
from ._plot import figure_widget


def resolve_config(source: Any):
    """A ``RunConfig`` from a config, a form (its ``.config``) or a callable returning one."""
    if hasattr(source, "model_dump"):
        return source
    if hasattr(source, "config"):
        return source.config
    if callable(source):
        return source()
    raise TypeError(f"cannot get a RunConfig from {type(source).__name__}")


def bins(values: list[float], max_bins: int = 40) -> tuple[list[float], list[int], float]:
    """(left edges, counts, width) of a histogram of ``values`` with at most ``max_bins`` bins."""
    if not values:
        return [], [], 1.0
    low, high = min(values), max(values)
    width = max(1.0, math.ceil((high - low + 1) / max_bins))
    counts = [0] * (int((high - low) // width) + 1)
    for v in values:
        counts[int((v - low) // width)] += 1
    return [low + i * width for i in range(len(counts))], counts, width


def parameter_counts(config) -> dict:
    """Total and trainable parameters of the model ``config`` trains, with its method applied; no training.

    Builds the model the way the engine does (tokenizer, rows for the labels, base model, method) and
    frees it again before returning.
    """
    import gc

    from ..engine.build import build, quiet
    from ..engine.train import count_parameters

    quiet()
    built = build(config, world_size=config.distributed.num_processes)
    model = built.model
    try:
        base_total = built.base_params
        trainable, total = count_parameters(model)
        model_class = type(model).__name__
    finally:
        del model, built
        gc.collect()
        _free_cuda_cache()
    return {
        "model": config.model_name,
        "method": config.method.name,
        "bits": config.bits,
        "base_params": base_total,
        "total_params": total,
        "trainable_params": trainable,
        "trainable_pct": round(100 * trainable / total, 4) if total else None,
        "model_class": model_class,
    }


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Background(widgets.VBox):
    """A button that runs ``work(config)`` in a thread and shows its result."""

    label = "Compute"

    def __init__(self, source: Any, work: Callable[[Any], dict], **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self._work = work
        self.result: Optional[dict] = None
        self.error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self.button = widgets.Button(description=self.label, icon="search", layout=widgets.Layout(width="auto"))
        self.button.on_click(lambda _: self.compute())
        self.message = widgets.HTML()

    def compute(self, wait: bool = False) -> Optional[threading.Thread]:
        """Start computing for the current config (in a thread); ``wait=True`` blocks until done."""
        if self._thread is not None and self._thread.is_alive():
            if wait:
                self._thread.join()
            return self._thread
        try:
            config = resolve_config(self.source)
        except ConfigError as exc:
            self._fail(str(exc))
            return None
        self.button.disabled = True
        self.message.value = "<i>working&hellip;</i>"
        self._thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()
        return self._thread

    def _run(self, config) -> None:
        try:
            result = self._cached(config)
        except ConfigError as exc:
            self._fail(str(exc))
        except Exception as exc:  # show it where the button is
            self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.result, self.error = result, None
            self.message.value = ""
            self._show(result, config)
        finally:
            self.button.disabled = False

    def _cached(self, config) -> dict:
        return self._work(config)

    def _fail(self, message: str, detail: str = "") -> None:
        self.result, self.error = None, message
        self.message.value = f"<span style='color:#c62828'>&#9888; {esc(message)}</span>"
        if detail:
            self.message.value += f"<details><summary>details</summary><pre>{esc(detail[-3000:])}</pre></details>"

    def _show(self, result: dict, config) -> None:
        raise NotImplementedError


class DataPreview(_Background):
    """First rows as a table and a token-length histogram of the training data."""

    label = "Preview data"

    def __init__(self, source: Any, previewer: Optional[Callable[[Any], dict]] = None, rows: int = 5,
                 plots: Optional[str] = None, **kwargs):
        self._plots = plots
        if previewer is None:
            def previewer(config):
                from ..data import preview

                return preview(config, rows=rows)
        super().__init__(source, previewer, **kwargs)
        self.add_class("ftkit-data-preview")
        self.stats = widgets.HTML()
        self.rows = widgets.HTML()
        self.figure = None
        self._plot_box = widgets.Box()
        self.children = [self.button, self.message, self.stats, self.rows, self._plot_box]

    def _show(self, result: dict, config) -> None:
        columns = result.get("columns") or (list(result["rows"][0]) if result.get("rows") else [])
        self.rows.value = table(result.get("rows") or [], columns, limit=200, css_class="ftkit-preview-rows")
        t = result.get("token_lengths") or {}
        self.stats.value = (
            f"<b>{number(result.get('num_train'))}</b> training rows, <b>{number(result.get('num_eval'))}</b> "
            f"evaluation rows &middot; tokens per row: min {number(t.get('min'))}, median {number(t.get('median'))}, "
            f"p95 {number(t.get('p95'))}, max {number(t.get('max'))} &middot; "
            f"{number(t.get('truncated'))} longer than max_seq_length {config.training.max_seq_length}"
            + (f" ({number(t.get('dropped'))} dropped: nothing left to learn from)" if t.get("dropped") else "")
            + (f" &middot; suggested max_seq_length {number(t.get('suggested'))}" if t.get("suggested") else "")
        )
        if hasattr(self.source, "show_length") and result.get("length_report"):
            self.source.show_length(result["length_report"])
        edges, counts, width = bins(result.get("lengths") or [])
        fig = go.Figure(go.Bar(x=[e + width / 2 for e in edges], y=counts, width=width, name="rows",
                               marker_color="#1f77b4"))
        fig.add_vline(x=config.training.max_seq_length, line_dash="dash", line_color="#c62828",
                      annotation_text="max_seq_length")
        fig.update_layout(height=260, margin=dict(l=40, r=10, t=30, b=30), title="token length per training row",
                          xaxis_title="tokens", yaxis_title="rows", bargap=0.05)
        self.figure = figure_widget(fig, self._plots)
        self._plot_box.children = [self.figure] if isinstance(self.figure, widgets.Widget) else []


class ModelSummary(_Background):
    """Total and trainable parameters for the chosen model and method, without starting a run."""

    label = "Count parameters"

    def __init__(self, source: Any, counter: Optional[Callable[[Any], dict]] = None, **kwargs):
        super().__init__(source, counter or parameter_counts, **kwargs)
        self.add_class("ftkit-model-summary")
        self._cache: dict[str, dict] = {}
        self.card = widgets.HTML()
        self.children = [self.button, self.message, self.card]

    def _cached(self, config) -> dict:
        data = config.to_dict()
        key = json.dumps({k: data[k] for k in ("model", "task", "method", "quantization")}, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = self._work(config)
        return self._cache[key]

    def _show(self, result: dict, config) -> None:
        pct = result.get("trainable_pct")
        bits = f", {result['bits']}-bit base" if result.get("bits") else ""
        self.card.value = (
            f"<div class='ftkit-param-card'><b>{esc(result.get('model'))}</b> with "
            f"<b>{esc(config.method_spec.title)}</b>{esc(bits)}: "
            f"<b>{number(result.get('trainable_params'))}</b> trainable of {number(result.get('total_params'))} "
            f"parameters ({'-' if pct is None else f'{pct:.4g}'} %)</div>"
        )
