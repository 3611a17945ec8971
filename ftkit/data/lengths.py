"""Token lengths: what ``max_seq_length`` cuts or drops, and the preview of a run's data."""
from __future__ import annotations

import math

from ..errors import ConfigError
from .rows import load_rows

#: a run warns when more than this share of its training rows is cut by max_seq_length
TRUNCATION_WARN_SHARE = 0.05
KEEP_WHOLE = 0.95  # the suggested max_seq_length keeps this share of rows whole


# ---- lengths: what max_seq_length cuts or drops ---------------------------------------


def measure(config, tokenizer, row: dict) -> tuple[int, bool]:
    """(tokens the row needs whole, whether max_seq_length leaves nothing of it to learn from)."""
    spec = config.task_spec
    if spec.measure is not None:
        try:
            return spec.measure(tokenizer, row, config.task_options, config.training.max_seq_length)
        except (ConfigError, ValueError, TypeError, KeyError):  # no chat template...: training says why
            pass
    return _token_length(tokenizer, row), False


def suggested_length(lengths: list[int], share: float = KEEP_WHOLE) -> int:
    """The smallest multiple of 8 that keeps ``share`` of these rows whole."""
    if not lengths:
        return 8
    ordered = sorted(lengths)
    need = ordered[max(0, math.ceil(share * len(ordered)) - 1)]
    return max(8, int(math.ceil(need / 8) * 8))


def length_report(config, tokenizer, rows: list[dict], what: str = "training") -> dict:
    """How many rows ``max_seq_length`` cuts or drops, and the length that keeps 95 % whole.

    Returns counts for the run's summary and a ``message`` for its log; ``warn`` is
    True when rows are dropped or more than 5 % are cut.
    """
    limit = config.training.max_seq_length
    lengths, dropped = [], 0
    for row in rows:
        length, gone = measure(config, tokenizer, row)
        lengths.append(length)
        dropped += bool(gone)
    cut = sum(length > limit for length in lengths) - dropped
    n = len(lengths)
    suggested = suggested_length(lengths)
    warn = bool(dropped) or (n and cut / n > TRUNCATION_WARN_SHARE)
    parts = [f"{what} rows: {n}"]
    if cut:
        parts.append(f"{cut} longer than max_seq_length {limit} tokens are cut to it")
    if dropped:
        parts.append(f"{dropped} dropped (nothing left to learn from once cut to {limit} tokens)")
    if not cut and not dropped:
        parts.append(f"all fit in max_seq_length {limit} tokens")
    message = ", ".join(parts)
    if (cut or dropped) and suggested > limit:
        message += f"; max_seq_length {suggested} would keep {int(KEEP_WHOLE * 100)} % of them whole"
    elif cut or dropped:
        message += f" ({int(KEEP_WHOLE * 100)} % fit whole)"
    return {
        "rows": n, "max_seq_length": limit, "truncated": cut, "dropped": dropped,
        "longest": max(lengths) if lengths else 0, "suggested_max_seq_length": suggested,
        "warn": bool(warn), "message": ("warning: " if warn else "") + message,
    }


def preview(config, rows: int = 5, tokenizer=None) -> dict:
    """First rows and token-length statistics, without loading a model."""
    notes: list[str] = []
    train, evals = load_rows(config, notes)
    out: dict = {
        "columns": list(config.task_spec.columns),
        "num_train": len(train),
        "num_eval": len(evals),
        "rows": [dict(r) for r in train[:rows]],
        "notes": notes,
    }
    if tokenizer is None:
        from ..engine.loading import load_tokenizer

        tokenizer = load_tokenizer(config)
    report = length_report(config, tokenizer, train)
    lengths = sorted(measure(config, tokenizer, row)[0] for row in train)
    n = len(lengths)
    out["token_lengths"] = {
        "min": lengths[0], "median": lengths[n // 2], "p95": lengths[min(n - 1, int(n * 0.95))],
        "max": lengths[-1], "mean": round(sum(lengths) / n, 1),
        "truncated": sum(length > config.training.max_seq_length for length in lengths),
        "dropped": report["dropped"], "suggested": report["suggested_max_seq_length"],
    }
    out["length_report"] = report
    out["lengths"] = lengths
    return out


def _token_length(tokenizer, row: dict) -> int:
    text = " ".join(_flatten(v) for v in row.values())
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def _flatten(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_flatten(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_flatten(v) for v in value.values())
    return str(value)
