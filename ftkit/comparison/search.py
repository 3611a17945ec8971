"""A short learning-rate search per arm, on data held out from training, never on the evaluation split.

The training rows are split once (a fixed seed) into search-train and
search-validation files under the comparison's folder; the search runs
train on the first and are scored on the second, so the final evaluation
rows, on which the verdict is drawn, are never seen while choosing. Each arm
tries a small log grid around its own learning rate for a fraction of the
budget; the best score on the held-out rows picks the rate the full runs
use. The score is the evaluation loss by default: after a short try a
metric such as accuracy still sits near chance in coarse steps, while the
loss already ranks the rates; ``score="metric"`` uses the task's metric.
No torch is imported here.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

#: the search's split of the training rows: the same for every arm and seed
SEARCH_SPLIT_SEED = 4321


@dataclass
class LrSearch:
    """``grid``: learning rates to try (default: ``points`` log-spaced over ``span``x either side of the arm's rate);
    ``fraction``: share of the budget each try trains; ``holdout``: share of training rows scored on."""

    grid: Optional[Sequence[float]] = None
    points: int = 3
    span: float = 10.0
    fraction: float = 0.25
    holdout: float = 0.2
    score: str = "loss"

    def rates(self, learning_rate: float) -> list[float]:
        if self.grid:
            return sorted(float(v) for v in self.grid)
        if self.points < 2:
            return [learning_rate]
        lo, hi = math.log10(learning_rate / self.span), math.log10(learning_rate * self.span)
        return [float(f"{10 ** (lo + (hi - lo) * i / (self.points - 1)):.3g}") for i in range(self.points)]

    def steps(self, full_steps: int) -> int:
        return max(2, int(round(full_steps * self.fraction)))


def holdout_changes(config, folder: Path, share: float) -> dict:
    """Config changes that train on part of the training rows and evaluate on the rest (files in ``folder``)."""
    from ..data import load_rows

    train, _evals = load_rows(config)  # the evaluation rows stay out of the search
    order = list(range(len(train)))
    random.Random(SEARCH_SPLIT_SEED).shuffle(order)
    n_val = max(1, int(round(len(train) * share)))
    if len(train) - n_val < 1:
        n_val = len(train) - 1
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, idx in (("search-train", order[n_val:]), ("search-val", order[:n_val])):
        path = folder / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for i in idx:
                f.write(json.dumps(train[i], ensure_ascii=False) + "\n")
        paths[name] = str(path.resolve())
    return {"data.source": paths["search-train"], "data.eval_source": paths["search-val"], "data.columns": {},
            "data.max_train_samples": None, "data.max_eval_samples": None}


def score(summary: Optional[dict], metric: Optional[str], higher_is_better: bool, by: str = "loss") -> float:
    """A search run's score, higher is better: -eval loss, or (``by="metric"``) its metric (negated when
    lower is better), falling back to -eval loss; -inf for a failed or diverged try."""
    if not summary or summary.get("status") not in ("finished", "stopped"):
        return -math.inf
    metrics = summary.get("metrics") or {}
    value = metrics.get(metric) if metric and by == "metric" else None
    if value is not None and math.isfinite(value):
        return value if higher_is_better else -value
    loss = metrics.get("loss")
    return -loss if loss is not None and math.isfinite(loss) else -math.inf


def choose(scores: dict[float, float], fallback: float) -> float:
    """The rate with the best score (ties: the smaller rate); ``fallback`` when every try failed."""
    finite = {lr: s for lr, s in scores.items() if math.isfinite(s)}
    if not finite:
        return fallback
    return min(finite, key=lambda lr: (-finite[lr], lr))
