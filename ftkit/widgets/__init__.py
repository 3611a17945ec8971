"""Notebook widgets: ``ConfigForm``, ``DataPreview``, ``ModelSummary``, ``Dashboard``, ``Comparison``,
``AdvisorWidget``, ``HandoffPanel`` and ``App``.

Stock ipywidgets and plotly ``FigureWidget``; where a frontend cannot render
``FigureWidget`` (anywidget not loadable), plots turn into PNG images drawn by
matplotlib in a stock ``ipywidgets.Image`` by themselves (``plots="auto"``), or
on request: ``set_plots("static" | "figurewidget" | "auto")`` or ``FTKIT_PLOTS``. Importing this package loads no training stack;
the preview widgets import it in a background thread when asked to compute.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "ConfigForm": "form",
    "DataPreview": "preview",
    "ModelSummary": "preview",
    "Dashboard": "dashboard",
    "Comparison": "compare",
    "App": "app",
    "AdvisorWidget": "advisor",
    "EstimatePanel": "estimate",
    "Playground": "playground",
    "HandoffPanel": "handoff",
}

__all__ = sorted([*_LAZY, "set_plots"])


def set_plots(mode: Any) -> None:
    """The plot path of every ftkit plot made from now on: ``"auto"``, ``"figurewidget"``, ``"static"``
    (``None``: back to the ``FTKIT_PLOTS`` environment variable, else ``"auto"``)."""
    from ._plot import set_plots as _set

    _set(mode)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
