"""Means with intervals over seeds, Welch's t-test between methods, and the verdict in words.

Each method's result is a sample of k seeds. ``interval`` is the mean's
two-sided 95 % Student-t interval; ``welch`` compares two methods' samples
with Welch's unequal-variance t-test and gives the difference of means with
its Welch-Satterthwaite 95 % interval. Fewer than two seeds per method leave
no variance to test against: the verdict then says it cannot tell.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

ALPHA = 0.05
TEST_NAME = "Welch's t-test"
MIN_SEEDS = 2


def _clean(values: Sequence[Optional[float]]) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def interval(values: Sequence[Optional[float]], confidence: float = 1 - ALPHA) -> dict:
    """``{mean, std, n, half, lo, hi}``: the mean and its Student-t interval (half width 0 with one value)."""
    xs = _clean(values)
    n = len(xs)
    if not n:
        return {"mean": None, "std": None, "n": 0, "half": None, "lo": None, "hi": None}
    mean = sum(xs) / n
    if n < 2:
        return {"mean": mean, "std": None, "n": 1, "half": None, "lo": None, "hi": None}
    from scipy import stats

    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "half": half, "lo": mean - half, "hi": mean + half}


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 1 - ALPHA) -> dict:
    """Welch's t-test of mean(a) - mean(b): ``{diff, lo, hi, p, df, n_a, n_b}`` (p None below 2 seeds each)."""
    xa, xb = _clean(a), _clean(b)
    na, nb = len(xa), len(xb)
    out = {"diff": None, "lo": None, "hi": None, "p": None, "df": None, "n_a": na, "n_b": nb}
    if not na or not nb:
        return out
    ma, mb = sum(xa) / na, sum(xb) / nb
    out["diff"] = ma - mb
    if na < MIN_SEEDS or nb < MIN_SEEDS:
        return out
    from scipy import stats

    va = sum((x - ma) ** 2 for x in xa) / (na - 1)
    vb = sum((x - mb) ** 2 for x in xb) / (nb - 1)
    se2 = va / na + vb / nb
    if se2 == 0:  # no spread at all: seeds reproduce exactly; equal means are the same, else clearly not
        same = ma == mb
        out.update(lo=ma - mb, hi=ma - mb, p=1.0 if same else 0.0, df=float(na + nb - 2))
        return out
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    t = (ma - mb) / math.sqrt(se2)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    out.update(lo=ma - mb - half, hi=ma - mb + half, p=float(2 * stats.t.sf(abs(t), df)), df=df)
    return out


def fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) < 1e-12:
        return "0"
    if abs(value) >= 1e7 or abs(value) < 1e-3:
        return f"{value:.3g}"
    if abs(value) < 10:
        return f"{value:.{digits}f}"
    return f"{value:.{max(0, digits - 1)}f}" if abs(value) < 100 else f"{value:,.0f}"


def mean_pm(stats_: dict, digits: int = 3) -> str:
    """``0.962 ± 0.011`` (the interval's half width), or the bare mean with one seed."""
    if stats_.get("mean") is None:
        return "-"
    if stats_.get("half") is None:
        return fmt(stats_["mean"], digits)
    return f"{fmt(stats_['mean'], digits)} ± {fmt(stats_['half'], digits)}"


def _ratio_words(a: Optional[float], b: Optional[float], what: str, fewer: str, more: str,
                 word: str = "memory") -> Optional[str]:
    """'trains 4× fewer parameters' / 'uses 12 % less memory' for a against b."""
    if not a or not b or a <= 0 or b <= 0 or a == b:
        return None
    if what == "params":
        r = b / a if a < b else a / b
        times = f"{r:,.0f}" if r >= 100 else f"{r:.3g}"
        return f"trains {times}× {fewer if a < b else more} parameters"
    pct = 100 * abs(a - b) / b
    if pct < 1:
        return None
    return f"uses {pct:.0f} % {fewer if a < b else more} {word}"


def verdict(groups: dict[str, Sequence[float]], metric: str, higher_is_better: bool = True,
            extras: Optional[dict[str, dict]] = None, what: str = "On this data") -> dict:
    """The comparison in words.

    ``groups``: label -> the metric over seeds. ``extras``: label -> ``{trainable_params, peak_memory_mb}``
    (means; ``memory_word`` names which memory, e.g. "estimated memory"). Returns ``{text, lines, per_label, best, test, seeds, enough}``: ``per_label`` maps each label
    to its own sentence against the best, for a table column.
    """
    extras = extras or {}
    summaries = {label: interval(values) for label, values in groups.items()}
    present = {k: v for k, v in summaries.items() if v["mean"] is not None}
    seeds = min((v["n"] for v in present.values()), default=0)
    out = {"lines": [], "per_label": {}, "best": None, "test": TEST_NAME, "seeds": seeds,
           "enough": seeds >= MIN_SEEDS and len(present) >= 2, "metric": metric, "pairs": {}}
    if len(present) < 2:
        out["text"] = "Nothing to compare yet: fewer than two methods have results."
        out["lines"] = [out["text"]]
        return out
    sign = 1 if higher_is_better else -1
    best = max(present, key=lambda k: sign * present[k]["mean"])
    out["best"] = best
    if seeds < MIN_SEEDS:
        line = (f"Not enough seeds to tell: {seeds} seed per method leaves no spread to test against "
                f"({TEST_NAME} needs at least {MIN_SEEDS} per method). Means: "
                + ", ".join(f"{k} {fmt(v['mean'])}" for k, v in present.items()) + f" ({metric}).")
        out["lines"] = [line]
        out["per_label"] = {k: "not enough seeds to tell" for k in present}
        out["text"] = line
        return out
    out["per_label"][best] = f"best mean {metric}"
    lines = []
    for label in present:
        if label == best:
            continue
        test = welch(groups[label], groups[best])
        out["pairs"][label] = test
        a, b = present[label], present[best]
        n_txt = f"{min(a['n'], b['n'])} seeds"
        trade = [w for w in (
            _ratio_words((extras.get(label) or {}).get("trainable_params"),
                         (extras.get(best) or {}).get("trainable_params"), "params", "fewer", "more"),
            _ratio_words((extras.get(label) or {}).get("peak_memory_mb"),
                         (extras.get(best) or {}).get("peak_memory_mb"), "memory", "less", "more",
                         (extras.get(label) or {}).get("memory_word", "memory")),
        ) if w]
        trade_txt = "; it " + " and ".join(trade) if trade else ""
        if test["p"] is not None and test["p"] >= ALPHA:
            line = (f"{label} and {best} are indistinguishable ({metric} {mean_pm(a)} vs {mean_pm(b)}, {n_txt}, "
                    f"p = {test['p']:.2g})" + trade_txt)
            out["per_label"][label] = f"indistinguishable from {best} (p = {test['p']:.2g})"
        else:
            diff = test["diff"]
            word = "higher" if diff > 0 else "lower"
            lo, hi = sorted((abs(test["lo"]), abs(test["hi"])))
            line = (f"{label} is {word} than {best} by {fmt(abs(diff))} in {metric} (95 % interval "
                    f"{fmt(lo)}–{fmt(hi)}; {mean_pm(a)} vs {mean_pm(b)}, {n_txt}, p = {test['p']:.2g})" + trade_txt)
            out["per_label"][label] = f"{word} than {best} by {fmt(abs(diff))} (p = {test['p']:.2g})"
        lines.append(line)
    head = f"{what}, {best} has the best mean {metric} ({mean_pm(present[best])}, {present[best]['n']} seeds)."
    tail = (f"Test: {TEST_NAME} on the final {metric} over seeds, two-sided, α = {ALPHA}; "
            f"intervals are 95 % Student-t; {seeds} seeds per method.")
    out["lines"] = [head] + [line + "." for line in lines] + [tail]
    out["text"] = " ".join(out["lines"])
    return out
