"""The comparison as one standalone HTML page (plotly.js embedded, so it opens offline)."""
from __future__ import annotations

import html
import time
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio


def report_html(frame: Any, base: Any, figure: Any, x_label: str) -> str:
    """Setup (from the base config, if any), the results ``frame`` and the curves of ``figure``."""
    setup = ""
    if base is not None:
        t = base.training
        budget = f"{t.max_steps} steps" if t.max_steps else f"{t.num_epochs} epochs"
        setup = (f"<p>task <b>{html.escape(base.task.name)}</b>, model <b>{html.escape(base.model_name)}</b>, "
                 f"data <b>{html.escape(base.data.source)}</b>, seed {t.seed}, budget {budget}, "
                 f"batch {t.batch_size} x {t.gradient_accumulation_steps}, learning rate {t.learning_rate}</p>")
    curves = go.Figure(getattr(figure, "figure", figure))
    curves.update_layout(height=420, width=None)
    plot = pio.to_html(curves, include_plotlyjs=True, full_html=False)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ftkit method comparison</title>"
        "<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse}"
        " td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f3f3f3}</style>"
        f"</head><body><h1>Method comparison</h1><p>{stamp}; x-axis: {html.escape(x_label)}</p>{setup}"
        f"<h2>Results</h2>{frame.to_html(index=False, na_rep='-', float_format=lambda v: f'{v:.4g}')}"
        f"<h2>Curves</h2>{plot}</body></html>"
    )
