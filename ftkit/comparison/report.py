"""A study as text (CLI), CSV, a plotly figure (mean curves with 95 % bands, the search) and an offline HTML report.

The report records the verdict, the settings, the library versions and the
machine, so a reader can re-run the same comparison.
"""
from __future__ import annotations

import csv
import html
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from . import stats as S

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
AXIS_TITLES = {"steps": "step", "tokens": "tokens seen", "seconds": "seconds", "flops": "estimated FLOPs"}
PACKAGES = ("ftkit", "torch", "transformers", "peft", "accelerate", "datasets", "bitsandbytes", "deepspeed", "scipy")
SHOWN = [("method", "method"), ("seeds", "seeds"), ("learning_rate", "learning rate"),
         ("final_metric", None), ("final_eval_loss", "eval loss"), ("final_train_loss", "train loss"),
         ("peak_memory_mb", "peak memory MB"), ("predicted_peak_mb", "estimated peak MB"),
         ("s_per_step", "s/step"), ("tokens_per_s", "tokens/s"), ("trainable_params", "trainable params"),
         ("verdict", "verdict")]


def environment() -> dict:
    """Versions, machine and device, read without importing torch."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpus": os.cpu_count(), "hostname": platform.node(),
            "cuda_visible_devices": gpu, "versions": versions, "written": time.strftime("%Y-%m-%d %H:%M:%S")}


def cell(row: dict, key: str) -> str:
    value = row.get(key)
    if key in ("method", "verdict", "metric"):
        return str(value or "")
    if key == "seeds":
        return str(value)
    if key == "learning_rate":
        return f"{value:.3g}" if value else "-"
    pm = row.get(f"{key}_pm")
    if key == "trainable_params" and value is not None:
        return f"{value:,.0f}" + (f" ± {pm:,.0f}" if pm else "")
    return S.mean_pm({"mean": value, "half": pm})


def headers(study) -> list[tuple[str, str]]:
    return [(k, title or f"{study.metric} (final)") for k, title in SHOWN]


def text(study) -> str:
    """The verdict, the table (mean ± 95 % interval over seeds) and the search, as plain text."""
    rows = study.table()
    cols = headers(study)[:-1]
    grid = [[title for _, title in cols]] + [[cell(r, k) for k, _ in cols] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in grid]
    out = ["Verdict:", *(f"  {line}" for line in study.verdict()["lines"]), "", "Per method (mean ± 95 % interval "
           "over seeds):", *(f"  {line}" for line in lines)]
    if study.search_scores:
        by_metric = study.search.score == "metric"
        out += ["", "Learning-rate search (held-out rows; " + (study.metric if by_metric else "eval loss") + "):"]
        for label, scores in study.search_scores.items():
            sign = 1 if study.higher_is_better and by_metric else -1
            tries = ", ".join(f"{lr:.2g}: {S.fmt(sign * s) if s == s and abs(s) != float('inf') else 'failed'}"
                              for lr, s in sorted(scores.items()))
            out.append(f"  {label}: {tries} -> {study.chosen[label]:.2g}")
    return "\n".join(out)


def write_csv(study, path) -> Path:
    """One row per method (mean and ± half width of each column, its verdict sentence), then one per run."""
    path = Path(path).expanduser()
    table = study.table()
    verdict = study.verdict()
    columns = list(table[0]) if table else ["method"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["row", *columns, "seed", "run_id", "status"], extrasaction="ignore")
        writer.writeheader()
        for row in table:
            writer.writerow({"row": "method", **row})
        for row in study.rows("final"):
            writer.writerow({"row": "run", **row})
        writer.writerow({"row": "verdict", "method": verdict["text"]})
    return path


def figure(study, curves: Optional[dict] = None):
    """Mean curves with 95 % bands over seeds (train loss, eval metric) and each method's search, as a go.Figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curves = curves or study.curves()
    search = curves.get("search") or {}
    cols = 3 if search else 2
    titles = ["train loss (mean ± 95 %)", f"{study.metric or 'eval loss'} (mean ± 95 %)"]
    by = study.metric if study.search and study.search.score == "metric" else "eval loss"
    titles += [f"lr search (held-out {by.replace('eval ', '')})"] if search else []
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.08)
    for i, (label, series) in enumerate(curves["arms"].items()):
        color = PALETTE[i % len(PALETTE)]
        for col, key in ((1, "loss"), (2, "metric")):
            band = series.get(key) or (series.get("eval_loss") if key == "metric" else None)
            if not band:
                continue
            fig.add_trace(go.Scatter(x=band["x"] + band["x"][::-1], y=band["hi"] + band["lo"][::-1], fill="toself", mode="lines",
                                     fillcolor=_alpha(color), line=dict(width=0), hoverinfo="skip",
                                     legendgroup=label, showlegend=False, name=f"{label} band"), row=1, col=col)
            fig.add_trace(go.Scatter(x=band["x"], y=band["mean"], mode="lines" if key == "loss" else "lines+markers",
                                     line=dict(color=color), name=f"{label} ({band['seeds']} seeds)",
                                     legendgroup=label, showlegend=col == 1), row=1, col=col)
        if label in search:
            pts = [(lr, v) for lr, v in search[label] if v is not None]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     line=dict(color=color, dash="dot"), legendgroup=label, showlegend=False,
                                     name=f"{label} search"), row=1, col=3)
            chosen = study.chosen.get(label)
            hit = [v for lr, v in pts if lr == chosen]
            if hit:
                fig.add_trace(go.Scatter(x=[chosen], y=hit, mode="markers", marker=dict(color=color, size=12,
                                         symbol="star"), legendgroup=label, showlegend=False,
                                         name=f"{label} chosen {chosen:.2g}"), row=1, col=3)
    axis = AXIS_TITLES[curves["axis"]]
    fig.update_xaxes(title_text=axis, row=1, col=1)
    fig.update_xaxes(title_text=axis, row=1, col=2)
    if search:
        fig.update_xaxes(title_text="learning rate", type="log", row=1, col=3)
    fig.update_layout(height=360, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def _alpha(color: str, a: float = 0.2) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"


def table_html(study) -> str:
    rows = study.table()
    cols = headers(study)
    head = "".join(f"<th>{html.escape(t)}</th>" for _, t in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r, k))}</td>" for k, _ in cols) + "</tr>" for r in rows)
    return f"<table class='ftkit-study-table'><tr>{head}</tr>{body}</table>"


def verdict_html(study) -> str:
    v = study.verdict()
    return "<div class='ftkit-verdict'>" + "".join(f"<p>{html.escape(line)}</p>" for line in v["lines"]) + "</div>"


def write_html(study, path, fig: Any = None) -> Path:
    """A standalone report (plotly.js embedded, works offline): verdict, table, curves, settings, environment."""
    path = Path(path).expanduser()
    try:
        import plotly.io as pio

        plot = pio.to_html(fig if fig is not None else figure(study), include_plotlyjs=True, full_html=False)
    except ImportError:  # plotly is the ui extra: the report stands without its plots
        plot = "<p><i>plotly is not installed: no plots.</i></p>"
    base = study.base
    setup = {"task": base.task.name, "model": base.model_name, "data": base.data.source,
             "batch": f"{base.training.batch_size} x {base.training.gradient_accumulation_steps}",
             "max_seq_length": base.training.max_seq_length, **study.settings(),
             "arms": {k: c.to_dict() for k, c in study.configs.items()}}  # every run's config but its seed
    pre = lambda data: f"<pre>{html.escape(json.dumps(data, indent=2, default=str))}</pre>"  # noqa: E731
    wall = f"; wall time {study.ended - study.started:.0f} s" if study.started and study.ended else ""
    text_ = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ftkit method comparison</title>"
        "<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse}"
        " td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f3f3f3}"
        " .ftkit-verdict{background:#f6f8fa;border-left:4px solid #2ca02c;padding:4px 12px}</style>"
        f"</head><body><h1>Method comparison</h1><p>{html.escape(study.budget.describe())}, "
        f"{len(study.seeds)} seeds per method{wall}</p>"
        f"<h2>Verdict</h2>{verdict_html(study)}<h2>Results</h2>{table_html(study)}"
        f"<h2>Curves</h2>{plot}<h2>Settings</h2>{pre(setup)}<h2>Environment</h2>{pre(environment())}"
        "</body></html>"
    )
    path.write_text(text_, encoding="utf-8")
    return path
