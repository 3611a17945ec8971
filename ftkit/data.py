"""Reading a run's rows: the task's built-in data, JSONL/JSON/CSV/TSV/Parquet/CoNLL files or a saved ``datasets`` folder.

Rows come back with the task's own column names, after ``data.columns``
mapping, so every task reads the same shape whatever the source. Each row of
a file remembers where it came from (``row.where``: "reviews.csv line 9"), so
a message about it names the file's own line, not a position after the
train/eval shuffle. Every row is checked before anything trains: empty
values, and what the task itself refuses (``TaskSpec.check``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError

SPLIT_SEED = 1234  # the same eval split for every run on the same data, whatever its seed
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".bio")
#: a run warns when more than this share of its training rows is cut by max_seq_length
TRUNCATION_WARN_SHARE = 0.05
KEEP_WHOLE = 0.95  # the suggested max_seq_length keeps this share of rows whole


class Row(dict):
    """One row of data; ``where`` says where it came from (file and line), ``lines`` each word's line (CoNLL)."""

    __slots__ = ("where", "lines")

    def __init__(self, data: Any = (), where: str = "", lines: Optional[list[int]] = None):
        super().__init__(data)
        self.where = where
        self.lines = lines

    def __reduce__(self):  # pickles (and deep-copies) with its position
        return (Row, (dict(self), self.where, self.lines))


def where(row: Any, index: int) -> str:
    """The row's own position ("reviews.csv line 9"), else its 1-based index."""
    return getattr(row, "where", "") or f"row {index + 1}"


# ---- the shape each task wants ----------------------------------------------------


def shape_text(task_name: Optional[str]) -> str:
    """One sentence on the files a task reads and the columns it wants."""
    from .tasks import tasks

    if not task_name or task_name not in tasks:
        return "each task names its columns in `ftkit tasks`"
    spec = tasks.get(task_name)
    cols = "; ".join(f"{c}: {what}" for c, what in spec.columns.items())
    conll = (" or a CoNLL file (.conll/.txt: one word and its tag per line, a blank line between sentences, "
             "-DOCSTART- lines skipped)") if spec.name == "ner" else ""
    return (f"task {spec.name} reads a .jsonl/.json/.csv/.tsv/.parquet file or a saved dataset folder{conll}, "
            f"with the columns {cols} (map other names with data.columns)")


def _example(task_name: Optional[str]) -> str:
    from .tasks import tasks

    if not task_name or task_name not in tasks:
        return ""
    row = tasks.get(task_name).builtin()[0]
    return f", e.g. {json.dumps(row)[:160]}"


# ---- readers ------------------------------------------------------------------------


def _text(path: Path, field_path: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([(field_path, (
            f"{path.name} line {line}: is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}); "
            "save the file as UTF-8 (your editor's 'Save with encoding', or "
            f"`iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`)"
        ))]) from None


def _no_rows(path: Path, field_path: str, task: Optional[str], why: str) -> ConfigError:
    return ConfigError([(field_path, f"{path.name} has no rows ({why}); {shape_text(task)}{_example(task)}")])


def _read_jsonl(path: Path, field_path: str, task: Optional[str]) -> list[Row]:
    rows = []
    for n, line in enumerate(_text(path, field_path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError([(field_path, (
                f"{path.name} line {n}: not valid JSON ({exc.msg}, column {exc.colno}); each line of a .jsonl "
                "file must be one complete JSON object, e.g. {\"text\": \"...\", \"label\": \"...\"}"
            ))]) from None
        if not isinstance(value, dict):
            raise ConfigError([(field_path, (
                f"{path.name} line {n}: holds a JSON {type(value).__name__}, not an object; write one "
                "{column: value} object per line"
            ))])
        rows.append(Row(value, f"{path.name} line {n}"))
    if not rows:
        raise _no_rows(path, field_path, task, "the file is empty or only blank lines")
    return rows


def _line_of(text: str, index: int, opener: str = "{") -> int:
    """The line on which the ``index``-th top-level item of a JSON array starts (best effort)."""
    depth, count, line, in_str, escape = 0, -1, 1, False, False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            escape = not escape and ch == "\\"
            if ch == '"' and not escape:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth == 2:
                count += 1
                if count == index:
                    return line
        elif ch in "]}":
            depth -= 1
    return line


def _read_json(path: Path, field_path: str, task: Optional[str]) -> list[Row]:
    text = _text(path, field_path)
    try:
        value = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line in a .json file: JSON Lines
            return _read_jsonl(path, field_path, task)
        raise ConfigError([(field_path, (
            f"{path.name} line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); a .json file holds "
            "a list of objects, or one object per line"
        ))]) from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]):
            value = lists[0]  # {"data": [...]}
        elif lists and len(lists) == len(value) and len({len(v) for v in lists}) == 1:
            value = [dict(zip(value, items)) for items in zip(*value.values())]  # columns: {"text": [...], ...}
        else:
            value = [value]
    if not isinstance(value, list):
        raise ConfigError([(field_path, f"{path.name}: holds a JSON {type(value).__name__}; write a list of objects")])
    rows = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError([(field_path, (
                f"{path.name} line {_line_of(text, i)}: item {i + 1} is a JSON {type(item).__name__}, not an object"
            ))])
        rows.append(Row(item, f"{path.name} line {_line_of(text, i)}"))
    if not rows:
        raise _no_rows(path, field_path, task, "the file is empty or an empty list")
    return rows


def _read_csv(path: Path, field_path: str, task: Optional[str]) -> list[Row]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(_text(path, field_path), newline=""), delimiter=delimiter, skipinitialspace=True)
    header: Optional[list[str]] = None
    rows = []
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            if len(record) > len(header) and not any(c.strip() for c in record[len(header):]):
                record = record[: len(header)]  # trailing separators
            if len(record) != len(header):
                raise ConfigError([(field_path, (
                    f"{path.name} line {line}: {len(record)} values for {len(header)} columns "
                    f"({', '.join(header)}); quote a value that holds a {'tab' if delimiter == chr(9) else 'comma'}"
                    ", e.g. \"Paris, France\""
                ))])
            rows.append(Row(zip(header, record), f"{path.name} line {line}"))
    except csv.Error as exc:
        raise ConfigError([(field_path, f"{path.name} line {reader.line_num}: {exc}; check its quotes")]) from None
    if header is None:
        raise _no_rows(path, field_path, task, "the file is empty")
    if not rows:
        raise _no_rows(path, field_path, task, f"only a header: {', '.join(header)}; add one row per example under it")
    return rows


def _column_number(columns: dict, name: str, width: int, default: int, path: Path, line: int) -> int:
    """A 1-based CoNLL column chosen by ``data.columns.<name>`` (a number), as a 0-based index."""
    chosen = columns.get(name)
    if chosen is None:
        return default
    if not str(chosen).strip().lstrip("-").isdigit():
        raise ConfigError([(f"data.columns.{name}", (
            f"{path.name} is a CoNLL file, whose columns are numbered: give a column number from 1 to {width}, "
            f"got {chosen!r}"
        ))])
    number = int(chosen)
    if not 1 <= number <= width:
        raise ConfigError([(f"data.columns.{name}", (
            f"{path.name} line {line} has {width} columns; choose a column number from 1 to {width}, got {number}"
        ))])
    return number - 1


def _read_conll(path: Path, field_path: str, columns: dict) -> list[Row]:
    """CoNLL layout: one word per line (its columns split on white space), a blank line between sentences."""
    rows, words, tags, lines, start = [], [], [], [], 0

    def flush():
        nonlocal words, tags, lines
        if words:
            rows.append(Row({"tokens": words, "tags": tags}, f"{path.name} line {lines[0]}", lines))
        words, tags, lines = [], [], []

    for n, raw in enumerate(_text(path, field_path).split("\n"), 1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            continue
        cells = line.split()
        if len(cells) < 2:
            raise ConfigError([(field_path, (
                f"{path.name} line {n}: {line[:40]!r} has one column; a CoNLL line holds a word and its tag "
                "separated by white space (e.g. 'Paris B-LOC')"
            ))])
        token_col = _column_number(columns, "tokens", len(cells), 0, path, n)
        tag_col = _column_number(columns, "tags", len(cells), len(cells) - 1, path, n)
        words.append(cells[token_col])
        tags.append(cells[tag_col])
        lines.append(n)
    flush()
    if not rows:
        raise _no_rows(path, field_path, "ner", "the file is empty or only -DOCSTART- lines")
    return rows


def is_conll(source: str, task: Optional[str]) -> bool:
    suffix = Path(source).suffix.lower()
    return suffix in CONLL_SUFFIXES or (suffix == ".txt" and task == "ner")


def read_source(source: str, field_path: str = "data.source", task: Optional[str] = None,
                columns: Optional[dict] = None) -> list[Row]:
    """All rows of a file or saved dataset, as ``Row`` dicts that know their line."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError([(field_path, f"{source!r} does not exist; give a .jsonl/.csv file, a saved dataset folder or 'builtin'")])
    suffix = path.suffix.lower()
    try:
        if path.is_dir():
            import datasets

            datasets.disable_progress_bars()
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                split = "train" if "train" in loaded else next(iter(loaded))
                loaded = loaded[split]
            rows = [Row(r, f"{path.name} row {i + 1}") for i, r in enumerate(loaded.to_list())]
        elif suffix == ".jsonl":
            rows = _read_jsonl(path, field_path, task)
        elif suffix == ".json":
            rows = _read_json(path, field_path, task)
        elif suffix in (".csv", ".tsv"):
            rows = _read_csv(path, field_path, task)
        elif is_conll(source, task):
            rows = _read_conll(path, field_path, columns or {})
        elif suffix == ".parquet":
            import datasets

            datasets.disable_progress_bars()
            loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
            rows = [Row(r, f"{path.name} row {i + 1}") for i, r in enumerate(loaded.to_list())]
        else:
            raise ConfigError([(field_path, (
                f"cannot read {suffix or 'extensionless'} files like {path.name}; {shape_text(task)}"
            ))])
    except (ConfigError, FileNotFoundError):
        raise
    except Exception as exc:  # a malformed parquet or dataset folder: say which and why
        raise ConfigError([(field_path, (
            f"cannot read {source!r}: {type(exc).__name__}: {exc}; {shape_text(task)}"
        ))]) from None
    if not rows:
        raise _no_rows(path, field_path, task, "it holds no rows")
    return rows


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
        from .engine.loading import load_tokenizer

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
