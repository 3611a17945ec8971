"""Reading a run's rows: the task's built-in data, JSONL/CSV files or a saved ``datasets`` folder.

Rows come back with the task's own column names, after ``data.columns``
mapping, so every task reads the same shape whatever the source.
"""
from __future__ import annotations

import random
from pathlib import Path
from .errors import ConfigError

SPLIT_SEED = 1234  # the same eval split for every run on the same data, whatever its seed


def read_source(source: str, field_path: str = "data.source") -> list[dict]:
    """All rows of a file or saved dataset, as dicts."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError([(field_path, f"{source!r} does not exist; give a .jsonl/.csv file, a saved dataset folder or 'builtin'")])
    import datasets

    datasets.disable_progress_bars()
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                split = "train" if "train" in loaded else next(iter(loaded))
                loaded = loaded[split]
            return loaded.to_list()
        suffix = path.suffix.lower()
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}.get(suffix)
        if kind is None:
            raise ConfigError([(field_path, f"cannot read {suffix or 'extensionless'} files; use .jsonl, .json, .csv or .parquet")])
        extra = {"delimiter": "\t"} if suffix == ".tsv" else {}
        return datasets.load_dataset(kind, data_files=str(path), split="train", **extra).to_list()
    except ConfigError:
        raise
    except Exception as exc:  # a malformed file: say which and why
        raise ConfigError([(field_path, f"cannot read {source!r}: {type(exc).__name__}: {exc}")]) from None


def map_columns(rows: list[dict], config, source: str) -> list[dict]:
    """Rename user columns to the task's and check every required one is present."""
    spec = config.task_spec
    mapping = {task_col: config.data.columns.get(task_col, task_col) for task_col in spec.columns}
    unknown = sorted(set(config.data.columns) - set(spec.columns))
    if unknown:
        raise ConfigError([(f"data.columns.{unknown[0]}", f"task {spec.name} has no column {unknown[0]!r}; its columns are {', '.join(spec.columns)}")])
    present = set(rows[0]) if rows else set()
    for task_col, user_col in mapping.items():
        if user_col not in present:
            raise ConfigError([(
                f"data.columns.{task_col}",
                f"column {user_col!r} not found in {source} (it has: {', '.join(sorted(present)) or 'no rows'}); "
                f"map yours with data.columns.{task_col}=<your column>",
            )])
    return [{task_col: row[user_col] for task_col, user_col in mapping.items()} for row in rows]


def load_rows(config) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) for a config, column-mapped and capped."""
    d = config.data
    if d.source == "builtin":
        rows = config.task_spec.builtin()
    else:
        rows = map_columns(read_source(d.source), config, d.source)
    if not rows:
        raise ConfigError([("data.source", "has no rows")])
    if d.eval_source:
        train, evals = rows, map_columns(read_source(d.eval_source, "data.eval_source"), config, d.eval_source)
    else:
        order = list(range(len(rows)))
        random.Random(SPLIT_SEED).shuffle(order)
        n_eval = max(1, int(round(len(rows) * d.eval_fraction)))
        evals = [rows[i] for i in order[:n_eval]]
        train = [rows[i] for i in order[n_eval:]]
    if d.max_train_samples:
        train = train[: d.max_train_samples]
    if d.max_eval_samples:
        evals = evals[: d.max_eval_samples]
    if not train:
        raise ConfigError([("data.eval_fraction", "leaves no training rows; lower it or add data")])
    return train, evals


def preview(config, rows: int = 5, tokenizer=None) -> dict:
    """First rows and token-length statistics, without loading a model."""
    train, evals = load_rows(config)
    out: dict = {
        "columns": list(config.task_spec.columns),
        "num_train": len(train),
        "num_eval": len(evals),
        "rows": train[:rows],
    }
    if tokenizer is None:
        from .engine.loading import load_tokenizer

        tokenizer = load_tokenizer(config)
    lengths = sorted(_token_length(tokenizer, row) for row in train)
    n = len(lengths)
    out["token_lengths"] = {
        "min": lengths[0], "median": lengths[n // 2], "p95": lengths[min(n - 1, int(n * 0.95))],
        "max": lengths[-1], "mean": round(sum(lengths) / n, 1),
        "truncated": sum(length > config.training.max_seq_length for length in lengths),
    }
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

