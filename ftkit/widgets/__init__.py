"""Notebook widgets: ``ConfigForm``, ``DataPreview``, ``ModelSummary``, ``Dashboard``, ``Comparison``,
``AdvisorWidget``, ``HandoffPanel`` and ``App``.

Stock ipywidgets and plotly ``FigureWidget`` only, so they work in JupyterLab
and VS Code notebooks alike. Importing this package loads no training stack;
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

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
