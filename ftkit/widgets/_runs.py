"""Reading any run-like object the same way: a controller's ``Run`` or a ``RunRecord`` from disk."""
from __future__ import annotations

from typing import Any, Optional


def resolve(run: Any, controller: Any = None) -> Any:
    """A run object from a run, or from a run id through ``controller.get`` (a new ``Controller`` if none)."""
    if not isinstance(run, str):
        return run
    if controller is None:
        from ..controller import Controller

        controller = Controller()
    return controller.get(run)


def events(run: Any) -> list[dict]:
    found = getattr(run, "events", None)
    if callable(found):
        found = found()
    return list(found or ())


def config(run: Any) -> Optional[Any]:
    try:
        return run.config
    except Exception:  # a record whose config.json went missing
        return None


def summary(run: Any) -> Optional[dict]:
    """The run's summary with every key present, whatever its age (``runstate.read_summary``)."""
    from ..runstate import read_summary

    try:
        return read_summary(run.summary)
    except Exception:
        return None


def state(run: Any):
    """The run as its events say it is: a ``ftkit.runstate.RunState`` (for the dashboard and the comparison)."""
    from ..runstate import RunState, for_config

    return RunState.fold(events(run), **for_config(config(run)))


def status(run: Any, fallback: str = "") -> str:
    try:
        return run.status or fallback
    except Exception:
        return fallback


def run_path(run: Any):
    """The run's folder, or None for a fake run without one."""
    return getattr(run, "path", None)


def run_id(run: Any) -> str:
    return str(getattr(run, "id", "") or "")


def log_tail(run: Any, n: int) -> list[str]:
    tail = getattr(run, "log_tail", None)
    if tail is None:
        return []
    try:
        text = tail(n)
    except Exception:
        return []
    if isinstance(text, str):
        return text.splitlines()[-n:]
    return [str(line).rstrip("\n") for line in (text or [])][-n:]


def event_key(event: dict) -> tuple:
    return event.get("type"), event.get("time"), event.get("step"), event.get("status")
