"""``Study``: a comparison run end to end through the controller's public API.

``Study(base, methods, seeds=None, budget="200 steps", search=None).run()``
optionally searches each arm's learning rate on held-out rows, queues every
arm x seed at the chosen rates through ``Controller.queue`` and waits; then
``rows()`` (one per run), ``table()`` (one per arm, mean ± interval),
``verdict()`` and ``curves()`` read the runs' events and summaries. It
works the same from a notebook widget (``ftkit.widgets.Comparison``), the
CLI (``ftkit compare``) or plain code. No torch is imported here.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from ..errors import ConfigError
from . import plan as P
from . import stats as S
from .search import LrSearch, choose, holdout_changes, score

TABLE_COLUMNS = ["final_metric", "final_eval_loss", "final_train_loss", "peak_memory_mb", "predicted_peak_mb",
                 "s_per_step", "tokens_per_s", "trainable_params", "wall_s"]


def _as_config(base):
    from ..estimator.core import _as_config as load

    return load(base)


class Study:
    """Arms x seeds under one budget, each arm at its own (optionally searched) learning rate."""

    def __init__(self, base: Any, methods: Union[Iterable, dict], seeds: Optional[int] = None,
                 budget: Union[str, int, P.Budget, None] = None, search: Union[None, bool, LrSearch] = None,
                 time_budget_s: float = 600.0, controller: Any = None, device: str = P.DEFAULT_DEVICE,
                 concurrent: int = 1, on_run: Optional[Callable[[Any, dict], None]] = None):
        self.base = _as_config(base)
        self.controller = controller
        self.device = device
        self.concurrent = concurrent
        self.on_run = on_run
        self.time_budget_s = time_budget_s
        self.notes: list[str] = []
        self.budget = P.Budget.parse(budget, default_steps=self.base.training.max_steps or 100)
        self.base_seed = self.base.training.seed
        self.metric = self.base.task_spec.metric
        self.higher_is_better = self.base.task_spec.greater_is_better
        self.configs: dict[str, Any] = {}
        for arm in P.arms_from(methods):
            try:
                self.configs[arm.label] = P.arm_config(self.base, arm)
            except ConfigError as exc:
                self.notes.append(f"{arm.label} left out: " + "; ".join(f"{p}: {m}" for p, m in exc.problems))
        self.steps = {k: P.steps_for(c, self.budget, device) for k, c in self.configs.items()}
        self.scale = {k: P.x_scale(c, self.budget, device) for k, c in self.configs.items()}
        self.search = self._search_setting(search, seeds)
        spent = self.search_seconds() if self.search else 0.0
        k = seeds or P.default_seeds(list(self.configs.values()), self.budget, time_budget_s, spent, device)
        if not seeds:
            self.notes.append(f"{k} seed(s) per method fit the time budget of {time_budget_s:g} s "
                              f"(estimated {self.estimated_seconds(k):.0f} s)")
        self.seeds = [self.base_seed + i for i in range(int(k))]
        self.chosen: dict[str, float] = {k: c.training.learning_rate for k, c in self.configs.items()}
        self.search_scores: dict[str, dict[float, float]] = {}
        self.entries: list[dict] = []  # {"arm", "seed", "phase", "lr", "run"}
        self.started = self.ended = None
        self._stop = threading.Event()

    # ---- planning --------------------------------------------------------------------------------

    def _search_setting(self, search, seeds) -> Optional[LrSearch]:
        if isinstance(search, LrSearch):
            return search
        if search is False:
            return None
        candidate = LrSearch()
        if search is True:
            return candidate
        # auto: on when the search plus two seeds of every arm fit the time budget
        self.search = candidate
        need = self.search_seconds() + self.estimated_seconds(max(2, seeds or 2), with_search=False)
        on = need <= self.time_budget_s
        self.notes.append(f"learning-rate search {'on' if on else 'off'}: it and 2 seeds need about {need:.0f} s "
                          f"of the {self.time_budget_s:g} s budget")
        return candidate if on else None

    def search_seconds(self) -> float:
        search = self.search or LrSearch()
        total = 0.0
        for label, config in self.configs.items():
            tries = len(search.rates(config.training.learning_rate))
            budget = P.Budget(self.budget.kind, self.budget.amount * search.fraction) \
                if self.budget.kind == "seconds" else P.Budget("steps", search.steps(self.steps[label]))
            total += tries * P.run_seconds(config, budget, self.device)
        return total

    def estimated_seconds(self, k: Optional[int] = None, with_search: bool = True) -> float:
        k = k or len(self.seeds)
        runs = sum(P.run_seconds(c, self.budget, self.device) for c in self.configs.values()) * k
        return runs + (self.search_seconds() if with_search and self.search else 0.0)

    def settings(self) -> dict:
        return {"methods": {k: c.method.name for k, c in self.configs.items()}, "seeds": self.seeds,
                "budget": self.budget.describe(), "steps": self.steps, "learning_rates": self.chosen,
                "search": None if not self.search else {
                    "grid": {k: self.search.rates(c.training.learning_rate) for k, c in self.configs.items()},
                    "fraction": self.search.fraction, "holdout": self.search.holdout, "score": self.search.score},
                "metric": self.metric, "test": S.TEST_NAME, "device_for_estimates": self.device}

    # ---- running ------------------------------------------------------------------------------------

    def _controller(self):
        if self.controller is None:
            from ..controller import Controller

            self.controller = Controller()
        return self.controller

    def _queue(self, items: list[tuple[str, int, str, float, Any]]) -> list:
        runs = self._controller().queue([c for *_, c in items], concurrent=self.concurrent)
        for (label, seed, phase, lr, _), run in zip(items, runs):
            entry = {"arm": label, "seed": seed, "phase": phase, "lr": lr, "run": run}
            self.entries.append(entry)
            if self.budget.kind == "seconds":
                limit = self.budget.amount * (self.search.fraction if phase == "search" else 1.0)
                run.subscribe(lambda e, run=run, limit=limit: _stop_on_time(run, e, limit))
            if self.on_run is not None:
                self.on_run(run, entry)
        return runs

    def start_search(self) -> list:
        """Queue every arm's learning-rate tries (one seed, a fraction of the budget, held-out rows)."""
        if not self.search:
            return []
        root = Path(getattr(self._controller(), "root", None) or P_runs_root())
        folder = root / ".comparisons" / time.strftime("%Y%m%d-%H%M%S")
        items = []
        for label, config in self.configs.items():
            held = config.update(holdout_changes(config, folder / _safe(label), self.search.holdout))
            steps = self.search.steps(self.steps[label]) if self.budget.kind != "seconds" else self.steps[label]
            for lr in self.search.rates(config.training.learning_rate):
                c = P.seeded(held, 0, steps, self.base_seed).update(
                    {"training.learning_rate": lr, "name": f"{config.name}-lr{lr:.2g}"[:64]})
                items.append((label, self.base_seed, "search", lr, c))
        return self._queue(items)

    def finish_search(self) -> dict[str, float]:
        """Wait for the tries; set and return each arm's chosen rate."""
        for entry in self.entries:
            if entry["phase"] == "search":
                entry["run"].wait()
        for label, config in self.configs.items():
            tries = [e for e in self.entries if e["phase"] == "search" and e["arm"] == label]
            scores = {e["lr"]: score(_summary(e["run"]), self.metric, self.higher_is_better, self.search.score)
                      for e in tries}
            if scores:
                self.search_scores[label] = scores
                self.chosen[label] = choose(scores, config.training.learning_rate)
        return dict(self.chosen)

    def start_final(self) -> list:
        """Queue every arm x seed at its chosen rate, seed by seed (each seed's arms side by side)."""
        items = []
        for i, seed in enumerate(self.seeds):
            for label, config in self.configs.items():
                c = P.seeded(config, i, self.steps[label], self.base_seed)
                if c.training.learning_rate != self.chosen[label]:
                    c = c.set("training.learning_rate", self.chosen[label])
                items.append((label, seed, "final", self.chosen[label], c))
        return self._queue(items)

    def run(self, wait: bool = True) -> "Study":
        """Search (if on), then the full runs; with ``wait`` block until every run has ended."""
        if not self.configs:
            raise ConfigError([("methods", "nothing to compare: " + "; ".join(self.notes))])
        self.started = time.time()
        if self.search:
            self.start_search()
            self.finish_search()
        if not self._stop.is_set():
            self.start_final()
        if wait:
            self.wait()
        return self

    def wait(self, timeout: Optional[float] = None) -> None:
        for entry in list(self.entries):
            entry["run"].wait(timeout)
        self.ended = time.time()

    def stop(self) -> None:
        self._stop.set()
        for entry in self.entries:
            try:
                entry["run"].stop()
            except Exception:
                pass

    @property
    def done(self) -> bool:
        finals = [e for e in self.entries if e["phase"] == "final"]
        return bool(finals) and all(_status(e["run"]) in ("finished", "failed", "stopped") for e in finals)

    # ---- reading results ----------------------------------------------------------------------------

    def rows(self, phase: Optional[str] = "final") -> list[dict]:
        from .results import run_row

        return [run_row(e, self.metric) for e in self.entries if phase is None or e["phase"] == phase]

    def table(self) -> list[dict]:
        from .results import arm_table

        return arm_table(self)

    def verdict(self) -> dict:
        from .results import study_verdict

        return study_verdict(self)

    def curves(self) -> dict:
        from .results import arm_curves

        return arm_curves(self)

    def frame(self):
        """The per-arm table as a pandas DataFrame; ``frame.attrs['verdict']`` holds the verdict text."""
        import pandas as pd

        frame = pd.DataFrame(self.table())
        frame.attrs["verdict"] = self.verdict()["text"]
        return frame

    def to_csv(self, path) -> Path:
        from .report import write_csv

        return write_csv(self, path)

    def to_html(self, path, figure=None) -> Path:
        from .report import write_html

        return write_html(self, path, figure)

    def text(self) -> str:
        from .report import text

        return text(self)


def P_runs_root() -> Path:
    from ..store import runs_root

    return runs_root(None)


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in label)


def _status(run) -> str:
    try:
        return run.status
    except Exception:
        return ""


def _summary(run) -> Optional[dict]:
    try:
        return run.summary
    except Exception:
        return None


def _stop_on_time(run, event: dict, limit: float) -> None:
    if event.get("type") == "step" and (event.get("elapsed") or 0) >= limit and not getattr(run, "done", False):
        run.stop()
