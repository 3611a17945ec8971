"""A run's train and eval rows: mapped to the task's columns, checked, split the same way every run."""
from __future__ import annotations

import random
from typing import Any, Optional

from ..errors import ConfigError
from .files import Row, is_conll, read_source, where

SPLIT_SEED = 1234  # the same eval split for every run on the same data, whatever its seed


def map_columns(rows: list[dict], config, source: str) -> list[dict]:
    """Rename user columns to the task's and check every required one is present."""
    spec = config.task_spec
    mapping = {task_col: config.data.columns.get(task_col, task_col) for task_col in spec.columns}
    unknown = sorted(set(config.data.columns) - set(spec.columns))
    if unknown:
        raise ConfigError([(f"data.columns.{unknown[0]}", f"task {spec.name} has no column {unknown[0]!r}; its columns are {', '.join(spec.columns)}")])
    if is_conll(source, spec.name):
        return rows  # the reader took the chosen columns already
    present = set(rows[0]) if rows else set()
    for task_col, user_col in mapping.items():
        if user_col not in present:
            raise ConfigError([(
                f"data.columns.{task_col}",
                f"column {user_col!r} not found in {source} (it has: {', '.join(sorted(present)) or 'no rows'}); "
                f"map yours with data.columns.{task_col}=<your column>",
            )])
    out = []
    for i, row in enumerate(rows):
        missing = [user_col for user_col in mapping.values() if user_col not in row]
        if missing:
            raise ConfigError([(f"data.columns.{next(t for t, u in mapping.items() if u == missing[0])}",
                                f"{where(row, i)}: has no {missing[0]!r}; give every row the same columns")])
        out.append(Row({task_col: row[user_col] for task_col, user_col in mapping.items()}, where(row, i),
                       getattr(row, "lines", None)))
    return out


# ---- checking the values -------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, (list, tuple, dict)) and not value)


def check_rows(config, rows: list[dict], field_path: str = "data.source") -> list[str]:
    """Refuse rows the task cannot learn from (naming the line); return warnings about the others."""
    spec = config.task_spec
    for i, row in enumerate(rows):
        for column in spec.columns:
            if _empty(row.get(column)):
                shown = "null" if row.get(column) is None else repr(row.get(column))
                raise ConfigError([(f"data.columns.{column}", (
                    f"{where(row, i)}: {column} is empty ({shown}); fill it in or remove the row"
                    + ("" if field_path == "data.source" else f" (in {field_path})")
                ))])
    if spec.check is None:
        return []
    return list(spec.check(rows, config.task_options) or [])


def load_rows(config, notes: Optional[list] = None) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) for a config, column-mapped, checked and capped.

    Warnings about the data (a label seen once...) are appended to ``notes`` when given.
    """
    d, task = config.data, config.task.name
    if d.source == "builtin":
        rows = config.task_spec.builtin()
    else:
        rows = map_columns(read_source(d.source, task=task, columns=d.columns), config, d.source)
    if not rows:
        raise ConfigError([("data.source", "has no rows")])
    found = check_rows(config, rows) if d.source != "builtin" else []
    if d.eval_source:
        evals = map_columns(read_source(d.eval_source, "data.eval_source", task=task, columns=d.columns),
                            config, d.eval_source)
        found += check_rows(config, evals, "data.eval_source")
        train = rows
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
    if notes is not None:
        notes.extend(found)
    return train, evals


def check(config) -> list[str]:
    """Read and check a config's data (raising ConfigError for what cannot train); the warnings."""
    notes: list[str] = []
    load_rows(config, notes)
    return notes
