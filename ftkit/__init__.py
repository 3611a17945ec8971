"""ftkit: a notebook-native fine-tuning workbench.

Importing ``ftkit`` is light: the training stack loads only when a run starts.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "RunConfig": ("ftkit.config", "RunConfig"),
    "ConfigError": ("ftkit.errors", "ConfigError"),
    "Controller": ("ftkit.controller", "Controller"),
    "RunStore": ("ftkit.store", "RunStore"),
    "RunState": ("ftkit.runstate", "RunState"),
    "estimate": ("ftkit.estimator", "estimate"),
    "advise": ("ftkit.advisor", "advise"),
    "methods": ("ftkit.methods", "methods"),
    "tasks": ("ftkit.tasks", "tasks"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ftkit' has no attribute {name!r}")
