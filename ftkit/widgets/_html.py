"""Small formatting helpers for the HTML parts of the widgets."""
from __future__ import annotations

import html
import numbers
from typing import Any, Iterable, Optional

from ..units import duration  # noqa: F401  (re-exported for the views)


def esc(value: Any, limit: Optional[int] = None) -> str:
    text = "" if value is None else str(value)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return html.escape(text)


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return esc(value)


TABLE_STYLE = "border-collapse:collapse;font-size:0.9em"
CELL_STYLE = "border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top"


def table(rows: Iterable[dict], columns: list[str], limit: int = 200, css_class: str = "",
          nowrap: bool = False) -> str:
    cell = CELL_STYLE + (";white-space:nowrap" if nowrap else "")
    head = "".join(f"<th style='{cell};background:#f3f3f3'>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='{cell}'>{esc(_cell(row.get(c)), limit)}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    cls = f" class='{css_class}'" if css_class else ""
    return f"<table{cls} style='{TABLE_STYLE}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return "-" if value != value else number(float(value))
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)
