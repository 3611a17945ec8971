"""Which path ftkit's plots take: ``auto`` (the default), ``figurewidget`` or ``static``.

``set_plots()``, then the ``FTKIT_PLOTS`` environment variable, then ``auto``. In ``auto`` a plot's
wait for its view to report back starts once it can have been shown: after the cell that made it.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Optional

MODES = ("auto", "figurewidget", "static")
_default: Optional[str] = None  # set_plots(); else FTKIT_PLOTS; else "auto"
proven = threading.Event()  # a FigureWidget view in this kernel has reported back from the browser


def set_plots(mode: Optional[str]) -> None:
    """The plot path for every ftkit plot made from now on (``None``: back to ``FTKIT_PLOTS`` or ``auto``)."""
    global _default
    _default = None if mode is None else plots_mode(mode)


@contextlib.contextmanager
def using(mode: Optional[str]):
    """Plots made inside the ``with`` block take ``mode`` unless they name their own (``None``: no change)."""
    global _default
    before = _default
    if mode is not None:
        _default = plots_mode(mode)
    try:
        yield
    finally:
        _default = before


def plots_mode(mode: Optional[str] = None) -> str:
    """``mode``, else ``set_plots``'s, else the ``FTKIT_PLOTS`` environment variable, else ``auto``."""
    value = (mode or _default or os.environ.get("FTKIT_PLOTS") or "auto").strip().lower()
    if value not in MODES:
        raise ValueError(f"plots={value!r}: choose one of {', '.join(MODES)}")
    return value


#: Seconds a FigureWidget view has to report back. Loading plotly's bundle on a busy laptop or a first
#: Voila page takes several seconds; falling back too early loses a working interactive plot for good.
DEFAULT_WAIT_S = 15.0


def wait_s() -> float:
    try:
        return float(os.environ.get("FTKIT_PLOTS_WAIT", DEFAULT_WAIT_S))
    except ValueError:
        return DEFAULT_WAIT_S


_waiting: list = []  # (plot, wait) made during the running cell
_hooked = False


def watch(plot: Any, wait: float) -> None:
    """Start ``plot``'s wait once it can have been shown: after the running cell, or now."""
    global _hooked
    shell = _shell()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:  # no frontend to show it (a script, a test): nothing to wait for
        return
    try:
        parent = kernel.get_parent() or {}
        in_cell = parent.get("header", {}).get("msg_type") == "execute_request" \
            and threading.current_thread() is threading.main_thread()
    except Exception:
        in_cell = False
    if in_cell:
        if not _hooked:
            shell.events.register("post_run_cell", _cell_done)
            _hooked = True
        _waiting.append((plot, wait))
        return
    _start(plot, wait)


def _start(plot: Any, wait: float) -> None:
    timer = threading.Timer(wait, plot._timed_out)
    timer.daemon = True
    timer.start()


def _cell_done(*_: Any) -> None:
    while _waiting:
        _start(*_waiting.pop())


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


