"""One run in the comparison view: its ``RunState`` (the one view of a run) and the points of its curves.

The run's status, start info, losses, evals, memory peaks and summary are the reducer's; this keeps only
what a plot needs that the reducer does not: each loss point's tokens and seconds, so the curves can be
redrawn against any x-axis.
"""
from __future__ import annotations

from typing import Any, Optional

from ..runstate import RunState, for_config, read_summary
from . import _runs
from ._stream import Ema


class Entry:
    def __init__(self, run: Any, label: str, color: str):
        self.run = run
        self.label = label
        self.color = color
        self.state = RunState(**for_config(_runs.config(run)))
        self.steps: list[tuple[int, float, float, float]] = []  # step, tokens, seconds, smoothed loss
        self.evals: list[tuple[int, float, float, dict]] = []  # step, tokens, seconds, metrics
        self.ema = Ema()
        self.streams: dict = {}
        self.replayed: set = set()
        self.unsubscribe = None
        self._summary: Optional[dict] = None

    @staticmethod
    def x_of(axis: str, step: int, tokens: float, seconds: float) -> float:
        return {"step": step, "tokens": tokens, "seconds": seconds}[axis]

    @property
    def status(self) -> str:
        return self.state.status if self.state.status != "created" else _runs.status(self.run, "queued")

    @property
    def summary(self) -> Optional[dict]:
        """The summary the run ended with (its ``ended`` event's, else the run folder's); None while it runs."""
        if self._summary is None and self.state.done:
            self._summary = read_summary(self.state.summary or _runs.summary(self.run) or None)
        return self._summary

    def apply(self, e: dict, axis: str, metric: Optional[str]) -> bool:
        """Fold ``e`` in and add its points to the curves; True when the run just ended."""
        if not self.state.apply(e):
            return False  # an evaluation reported twice
        kind = e.get("type")
        if kind == "step" and e.get("loss") is not None:
            smooth = self.ema(e["loss"])
            row = (e.get("step", 0), e.get("tokens") or 0, e.get("elapsed") or 0.0, smooth)
            self.steps.append(row)
            self.streams["loss"].add(self.x_of(axis, *row[:3]), smooth)
        elif kind == "eval":
            step, metrics = e.get("step", 0), e.get("metrics") or {}
            tokens, seconds = (self.steps[-1][1], self.steps[-1][2]) if self.steps else (0, 0.0)
            self.evals.append((step, tokens, seconds, metrics))
            x = self.x_of(axis, step, tokens, seconds)
            if metrics.get("loss") is not None:
                self.streams["eval_loss"].add(x, metrics["loss"])
            if metric and metrics.get(metric) is not None:
                self.streams["metric"].add(x, metrics[metric])
        return kind == "ended"

    def row(self, metric: Optional[str]) -> dict:
        """The run's row of the results table: its summary, or what its events say so far."""
        state = self.state
        config = _runs.config(self.run)
        run_id = _runs.run_id(self.run)
        s = self.summary or state.summary_for(run_id, self.status, state.reason, config, now=state.last_time)
        metrics = s.get("metrics") or state.metrics
        return {
            "run_id": run_id,
            "method": config.method.name if config is not None else s.get("method") or self.label,
            "status": self.status,
            "steps": s.get("steps") or state.step,
            "trainable_params": s.get("trainable_params"),
            "trainable_pct": s.get("trainable_pct"),
            "peak_memory_mb": s.get("peak_cuda_mb") or s.get("peak_rss_mb"),
            "s_per_step": s.get("s_per_step") if self.summary else state.s_per_step,
            "tokens_per_s": s.get("tokens_per_s") if self.summary else state.tokens_per_s,
            "metric": metric,
            "final_metric": metrics.get(metric) if metric else None,
            "final_eval_loss": metrics.get("loss"),
            "final_train_loss": s.get("loss_last"),
            "wall_s": s.get("wall_s"),
        }
