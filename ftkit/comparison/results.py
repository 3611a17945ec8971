"""Reading a study's runs: one row per run, one row per arm (mean ± interval), curves with bands, the verdict."""
from __future__ import annotations

import math
from typing import Any, Optional

from ..runstate import RunState, read_summary
from . import stats as S

#: per-arm table: column -> the per-run field it summarises
SUMMARISED = {"final_metric": "final_metric", "final_eval_loss": "final_eval_loss",
              "final_train_loss": "final_train_loss", "peak_memory_mb": "peak_memory_mb",
              "predicted_peak_mb": "predicted_peak_mb", "s_per_step": "s_per_step", "tokens_per_s": "tokens_per_s",
              "trainable_params": "trainable_params", "wall_s": "wall_s"}


def _events(run) -> list[dict]:
    try:
        found = run.events
        return list(found() if callable(found) else found or ())
    except Exception:
        return []


def _summary(run) -> dict:
    try:
        return run.summary or {}
    except Exception:
        return {}


def _view(run, metric: Optional[str]) -> dict:
    """The summary the run ended with, else the one its events make so far (``RunState``)."""
    ended = read_summary(_summary(run) or None)
    if ended is not None and ended.get("metrics"):
        return ended
    state = RunState.fold(_events(run), metric=metric)
    live = state.summary_for(str(getattr(run, "id", "")), state.status, state.reason, now=state.last_time)
    return live if ended is None else {**ended, "metrics": live["metrics"]}  # a killed run's partial summary


def run_row(entry: dict, metric: Optional[str]) -> dict:
    run = entry["run"]
    s = _view(run, metric)
    metrics = s.get("metrics") or {}
    return {
        "method": entry["arm"], "seed": entry["seed"], "phase": entry["phase"], "learning_rate": entry["lr"],
        "run_id": str(getattr(run, "id", "")), "status": getattr(run, "status", None),
        "steps": s.get("steps"), "metric": metric,
        "final_metric": metrics.get(metric) if metric else None,
        "final_eval_loss": metrics.get("loss"), "final_train_loss": s.get("loss_last"),
        "peak_memory_mb": s.get("peak_cuda_mb") or s.get("run_peak_mb") or s.get("peak_rss_mb"),
        "predicted_peak_mb": s.get("predicted_peak_mb"), "peak_cuda_mb": s.get("peak_cuda_mb"),
        "s_per_step": s.get("s_per_step"), "tokens_per_s": s.get("tokens_per_s"),
        "trainable_params": s.get("trainable_params"), "wall_s": s.get("wall_s"),
    }


def _done_rows(study) -> dict[str, list[dict]]:
    by_arm: dict[str, list[dict]] = {label: [] for label in study.configs}
    for row in study.rows("final"):
        if row["status"] in ("finished", "stopped"):
            by_arm.setdefault(row["method"], []).append(row)
    return by_arm


def study_verdict(study) -> dict:
    by_arm = _done_rows(study)
    metric = study.metric
    higher = study.higher_is_better
    if all(r["final_metric"] is None for rows in by_arm.values() for r in rows):
        metric, higher = "eval loss", False  # a task without a metric: judge on the evaluation loss
        groups = {k: [r["final_eval_loss"] for r in rows] for k, rows in by_arm.items() if rows}
    else:
        groups = {k: [r["final_metric"] for r in rows] for k, rows in by_arm.items() if rows}
    # memory: the measured GPU peak where every run has one; on a CPU the estimator's (in-kernel runs share
    # one process, whose readings say little about each method)
    cuda = all(r.get("peak_cuda_mb") for rows in by_arm.values() for r in rows)
    extras = {}
    for k, rows in by_arm.items():
        params = S.interval([r["trainable_params"] for r in rows])["mean"]
        memory = S.interval([r["peak_cuda_mb" if cuda else "predicted_peak_mb"] for r in rows])["mean"]
        extras[k] = {"trainable_params": params, "peak_memory_mb": memory,
                     "memory_word": "GPU memory (measured peak)" if cuda else "memory (estimated peak)"}
    searched = f" each at its own learning rate chosen on held-out rows ({_rates(study)})" if study.search_scores \
        else ""
    out = S.verdict(groups, metric, higher, extras, what=f"On this data, under {study.budget.describe()}{searched}")
    out["budget"] = study.budget.describe()
    return out


def _rates(study) -> str:
    return ", ".join(f"{k} {v:.2g}" for k, v in study.chosen.items())


def arm_table(study) -> list[dict]:
    by_arm = _done_rows(study)
    verdict = study_verdict(study)
    out = []
    for label, rows in by_arm.items():
        row: dict[str, Any] = {"method": label, "method_name": study.configs[label].method.name
                               if label in study.configs else None,
                               "seeds": len(rows), "learning_rate": study.chosen.get(label), "metric": study.metric}
        for column, key in SUMMARISED.items():
            iv = S.interval([r[key] for r in rows])
            row[column] = iv["mean"]
            row[f"{column}_pm"] = iv["half"]
        row["verdict"] = verdict["per_label"].get(label, "")
        out.append(row)
    return out


def _points(events: list[dict], scale: float, axis: str) -> tuple[list, list]:
    """(x, train loss) and (x, metrics) of one run against the budget's axis."""
    loss, evals, last = [], [], (0, 0.0)
    for e in events:
        kind = e.get("type")
        if kind == "step" and e.get("loss") is not None:
            last = (e.get("step", 0), e.get("elapsed") or 0.0)
            loss.append((_x(last, scale, axis), e["loss"]))
        elif kind == "eval":
            step = e.get("step", 0)
            evals.append((_x((step, last[1]), scale, axis), e.get("metrics") or {}))
    return loss, evals


def _x(point: tuple, scale: float, axis: str) -> float:
    step, elapsed = point
    return float(elapsed) if axis == "seconds" else step * scale


def _band(series: list[list[tuple[float, float]]]) -> Optional[dict]:
    """Mean and 95 % band over seeds, on the first seed's x within the range every seed covers."""
    import numpy as np

    series = [s for s in series if s]
    if not series:
        return None
    end = min(s[-1][0] for s in series)
    xs = [x for x, _ in series[0] if x <= end]
    if not xs:
        return None
    columns = [np.interp(xs, [p[0] for p in s], [p[1] for p in s]) for s in series]
    mean, lo, hi = [], [], []
    for i in range(len(xs)):
        iv = S.interval([float(c[i]) for c in columns])
        mean.append(iv["mean"])
        lo.append(iv["lo"] if iv["lo"] is not None else iv["mean"])
        hi.append(iv["hi"] if iv["hi"] is not None else iv["mean"])
    return {"x": xs, "mean": mean, "lo": lo, "hi": hi, "seeds": len(series)}


def arm_curves(study) -> dict:
    """arm -> {"loss": band, "metric": band, "eval_loss": band}; also "search": arm -> [(lr, score)]."""
    axis = study.budget.kind
    out: dict = {"axis": axis, "arms": {}, "search": {}}
    for label in study.configs:
        losses, metrics, eval_losses = [], [], []
        for e in study.entries:
            if e["arm"] != label or e["phase"] != "final":
                continue
            loss, evals = _points(_events(e["run"]), study.scale.get(label, 1.0), axis)
            losses.append(loss)
            metrics.append([(x, m[study.metric]) for x, m in evals if m.get(study.metric) is not None])
            eval_losses.append([(x, m["loss"]) for x, m in evals if m.get("loss") is not None])
        out["arms"][label] = {"loss": _band(losses), "metric": _band(metrics), "eval_loss": _band(eval_losses)}
    for label, scores in study.search_scores.items():
        sign = 1 if study.higher_is_better and study.search.score == "metric" else -1
        out["search"][label] = [(lr, sign * s if math.isfinite(s) else None) for lr, s in sorted(scores.items())]
    return out
