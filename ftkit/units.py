"""Human-readable times, sizes and counts: the one place each is written out."""
from __future__ import annotations

from typing import Optional


def _bad(seconds: Optional[float]) -> bool:
    return seconds is None or seconds != seconds or seconds < 0


def clock(seconds: Optional[float]) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour), as a terminal's progress line shows an ETA; ``--:--`` if unknown."""
    if _bad(seconds):
        return "--:--"
    seconds = int(seconds)
    return (f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600
            else f"{seconds // 60:02d}:{seconds % 60:02d}")


def duration(seconds: Optional[float]) -> str:
    """``1h 02m``, ``3m 05s`` or ``7s``; ``-`` if unknown."""
    if _bad(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def mb(value: Optional[float]) -> str:
    """Megabytes as ``840 MB`` or, from 10 GB, ``12.3 GB``; ``-`` if unknown."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value / 1024:,.1f} GB" if value >= 10 * 1024 else f"{value:,.0f} MB"


def count(n: int, digits: int = 2) -> str:
    """A parameter count as ``3.85B``, ``25.17M`` or ``73,728``."""
    return f"{n / 1e9:.{digits + 1}f}B" if n >= 1e9 else f"{n / 1e6:.{digits}f}M" if n >= 1e6 else f"{n:,}"
