"""``RunState``: the one view of a run, folded from its events.

Status, step, losses, the last and the best eval, memory per rank, speed,
checkpoint and reason: the engine's callback, the controller, the run store,
the CLI, the Jupyter server extension and the widgets all read a run through
this reducer instead of rebuilding it from loose events. ``summary()`` builds
the summary a run ends with (in the worker, or by whoever closes a run whose
worker died), and ``read_summary()`` reads any summary the store can hold,
older ones too, with every key present.

Importing this module loads no torch, transformers, peft or DeepSpeed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .events import FINAL_STATUSES

#: statuses a run can be in; the first five are "active"
STATUSES = ("queued", "starting", "running", "paused", "stopping", "finished", "failed", "stopped")
ACTIVE = STATUSES[:5]

#: every key of a summary, with what an older summary that lacks it reads as
SUMMARY_KEYS: dict[str, Any] = {
    "run_id": None, "status": "failed", "reason": None, "method": None, "task": None, "model": None,
    "bits": None, "zero_stage": None, "steps": 0, "max_steps": 0, "loss_first": None, "loss_last": None,
    "metrics": {}, "best": None, "trainable_params": None, "total_params": None, "trainable_pct": None,
    "wall_s": None, "train_s": None, "s_per_step": None, "tokens_seen": 0, "tokens_per_s": None,
    # memory, MB: the process's largest RSS sampled at each step; torch's peak allocated CUDA memory;
    # per rank, each rank's lifetime peak RSS; the process's RSS before the run; the estimator's
    # prediction; what the run itself added (CUDA peak allocated on a GPU, RSS peak above the baseline
    # on a CPU: the number to hold against the prediction)
    "peak_rss_mb": None, "peak_cuda_mb": None, "rank_peak_rss_mb": None, "baseline_rss_mb": None,
    "predicted_peak_mb": None, "run_peak_mb": None,
    "checkpoint": None, "final_dir": None, "exit_code": None,
    # rows per split, how many max_seq_length cut or dropped, the length that keeps 95 % whole; data warnings
    "data": None,
}
#: keys renamed since: old name -> new name (old summaries still read)
RENAMED = {"measured_peak_mb": "run_peak_mb"}


def read_summary(summary: Optional[dict]) -> Optional[dict]:
    """Any summary (of any age, or the partial one a killed run left) with every key of ``SUMMARY_KEYS``."""
    if summary is None:
        return None
    out = dict(SUMMARY_KEYS)
    out["metrics"] = {}
    for key, value in summary.items():
        out[RENAMED.get(key, key)] = value
    if out.get("trainable_pct") is None and out.get("trainable_params") and out.get("total_params"):
        out["trainable_pct"] = round(100 * out["trainable_params"] / out["total_params"], 4)
    if not isinstance(out.get("metrics"), dict):
        out["metrics"] = {}
    return out


@dataclass
class RunState:
    """Fold events in with ``apply``; every field is the run as its events so far say it is.

    ``metric`` / ``greater_is_better`` pick the best eval (taken from the
    ``started`` event when it says, else from what the caller passes, e.g.
    the task of the run's config).
    """

    metric: Optional[str] = None
    greater_is_better: bool = True
    status: str = "created"
    reason: Optional[str] = None
    step: int = 0
    max_steps: int = 0
    start_step: int = 0
    losses: list = field(default_factory=list)  # (step, loss)
    loss_first: Optional[float] = None
    loss_last: Optional[float] = None
    learning_rate: Optional[float] = None
    metrics: dict = field(default_factory=dict)  # the last eval's: the saved model's score
    metrics_step: Optional[int] = None
    evals: list = field(default_factory=list)  # (step, metrics)
    best: Optional[dict] = None  # {"metric", "value", "step"}: the best eval
    tokens: int = 0
    tokens_per_s: Optional[float] = None
    s_per_step: Optional[float] = None
    elapsed: Optional[float] = None
    rss_mb: Optional[float] = None
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float = 0.0
    rank_rss_mb: Optional[list] = None
    rank_peak_rss_mb: Optional[list] = None
    rank_nodes: Optional[list] = None
    info: dict = field(default_factory=dict)  # the started event's fields
    checkpoint: Optional[str] = None
    summary: Optional[dict] = None  # the ended event's
    exit_code: Optional[int] = None
    first_time: Optional[float] = None
    started_time: Optional[float] = None
    last_time: Optional[float] = None
    events: int = 0

    @classmethod
    def fold(cls, events: Iterable[dict], **kwargs: Any) -> "RunState":
        state = cls(**kwargs)
        for event in events:
            state.apply(event)
        return state

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def node_rss_mb(self) -> Optional[dict]:
        """Memory per machine (node rank -> MB, its ranks summed) of a multi-node run; None on one machine."""
        if not self.rank_nodes or not self.rank_rss_mb:
            return None
        out: dict = {}
        for node, mb in zip(self.rank_nodes, self.rank_rss_mb):
            if node is not None and mb is not None:
                out[node] = round(out.get(node, 0.0) + mb, 1)
        return out

    @property
    def trainable_pct(self) -> Optional[float]:
        trainable, total = self.info.get("trainable_params"), self.info.get("total_params")
        return round(100 * trainable / total, 4) if trainable and total else None

    def apply(self, event: dict) -> bool:
        """Take one event; returns False for one that changes nothing (a repeated eval)."""
        kind = event.get("type")
        when = event.get("time")
        if when is not None:
            self.first_time = when if self.first_time is None else self.first_time
            self.last_time = when
        self.events += 1
        if kind == "status":
            if not self.done and event.get("status") in STATUSES:
                self.status = event["status"]
        elif kind == "started":
            self.info.update({k: v for k, v in event.items() if k not in ("type", "time", "v")})
            self.max_steps = event.get("max_steps") or self.max_steps
            self.start_step = event.get("start_step") or 0
            self.started_time = when
            if event.get("metric"):
                self.metric = event["metric"]
            if event.get("greater_is_better") is not None:
                self.greater_is_better = bool(event["greater_is_better"])
            if not self.done:
                self.status = "running"
        elif kind == "step":
            self._step(event)
        elif kind == "eval":
            return self._eval(event)
        elif kind == "checkpoint":
            self.checkpoint = event.get("path", self.checkpoint)
            self.step = max(self.step, event.get("step") or 0)
        elif kind == "ended":
            self.status = event.get("status") or "failed"
            self.reason = event.get("reason")
            self.exit_code = event.get("exit_code")
            self.summary = event.get("summary")
        return True

    def _memory(self, event: dict) -> None:
        if event.get("rss_mb") is not None:
            self.rss_mb = event["rss_mb"]
            self.peak_rss_mb = max(self.peak_rss_mb, event["rss_mb"])
        self.peak_cuda_mb = max(self.peak_cuda_mb, event.get("cuda_peak_mb") or 0)

    def _step(self, event: dict) -> None:
        step = event.get("step") or 0
        self.step = max(self.step, step)
        self.max_steps = event.get("max_steps") or self.max_steps
        loss = event.get("loss")
        if loss is not None:
            self.losses.append((step, loss))
            self.loss_first = loss if self.loss_first is None else self.loss_first
            self.loss_last = loss
        for name in ("learning_rate", "tokens_per_s", "s_per_step", "elapsed"):
            if event.get(name) is not None:
                setattr(self, name, event[name])
        self.tokens = event.get("tokens", self.tokens) or self.tokens
        if event.get("rank_peak_rss_mb"):
            self.rank_peak_rss_mb = event["rank_peak_rss_mb"]
        if event.get("rank_nodes"):
            self.rank_nodes = event["rank_nodes"]
        if event.get("rank_rss_mb"):
            self.rank_rss_mb = event["rank_rss_mb"]
        self._memory(event)
        if self.status in ("created", "queued", "starting"):
            self.status = "running"

    def _eval(self, event: dict) -> bool:
        step, metrics = event.get("step") or 0, event.get("metrics") or {}
        if self.evals and self.evals[-1] == (step, metrics):
            return False  # the same evaluation reported twice
        self.evals.append((step, metrics))
        self.metrics, self.metrics_step = metrics, step
        self.step = max(self.step, step)
        self._memory(event)
        value = metrics.get(self.metric) if self.metric else None
        if isinstance(value, (int, float)):
            best = None if self.best is None else self.best["value"]
            if best is None or (value > best if self.greater_is_better else value < best):
                self.best = {"metric": self.metric, "value": value, "step": step}
        return True

    def summary_for(self, run_id: str, status: str, reason: Optional[str], config: Any = None,
                    now: Optional[float] = None, **measured: Any) -> dict:
        """The run's summary: what its events say, the config's names, and ``measured`` (peaks, final_dir...)."""
        now = time.time() if now is None else now
        names = dict(method=None, task=None, model=None, bits=None, zero_stage=None)
        if config is not None:
            try:
                names = dict(method=config.method.name, task=config.task.name, model=config.model_name,
                             bits=config.bits, zero_stage=config.distributed.zero_stage)
            except Exception:  # a config that no longer loads: the events' names stand
                pass
        for key in ("method", "task", "model"):
            names[key] = names[key] or self.info.get(key)
        train_s = now - self.started_time if self.started_time else 0.0
        steps = self.step
        out = dict(SUMMARY_KEYS)
        out.update({
            "run_id": run_id, "status": status, "reason": reason, **names,
            "steps": steps, "max_steps": self.max_steps,
            "loss_first": self.loss_first, "loss_last": self.loss_last,
            "metrics": self.metrics, "best": self.best,
            "trainable_params": self.info.get("trainable_params"), "total_params": self.info.get("total_params"),
            "trainable_pct": self.trainable_pct,
            "wall_s": round(now - self.first_time, 2) if self.first_time else None,
            "train_s": round(train_s, 2),
            "s_per_step": round(train_s / steps, 4) if steps and train_s else None,
            "tokens_seen": self.tokens,
            "tokens_per_s": round(self.tokens / train_s, 1) if train_s and self.tokens else None,
            "peak_rss_mb": self.peak_rss_mb or None,
            "rank_peak_rss_mb": self.rank_peak_rss_mb,
            "peak_cuda_mb": self.peak_cuda_mb or None,
            "checkpoint": self.checkpoint,
            "data": self.info.get("data"),
        })
        out.pop("exit_code")  # only a run closed for its worker has one
        out.update(measured)
        return out


def for_config(config: Any) -> dict:
    """``RunState`` arguments for a run of ``config``: its task's metric and direction (for runs whose
    ``started`` event predates them)."""
    try:
        spec = config.task_spec
        return {"metric": spec.metric, "greater_is_better": spec.greater_is_better}
    except Exception:
        return {}
