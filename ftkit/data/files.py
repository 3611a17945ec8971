"""Reading rows from a source: the task's built-in data, JSONL/JSON/CSV/TSV/Parquet/CoNLL files or a
saved ``datasets`` folder. Each row of a file remembers its file and line (``row.where``)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError

CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".bio")


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
    from ..tasks import tasks

    if not task_name or task_name not in tasks:
        return "each task names its columns in `ftkit tasks`"
    spec = tasks.get(task_name)
    cols = "; ".join(f"{c}: {what}" for c, what in spec.columns.items())
    conll = (" or a CoNLL file (.conll/.txt: one word and its tag per line, a blank line between sentences, "
             "-DOCSTART- lines skipped)") if spec.name == "ner" else ""
    return (f"task {spec.name} reads a .jsonl/.json/.csv/.tsv/.parquet file or a saved dataset folder{conll}, "
            f"with the columns {cols} (map other names with data.columns)")


def _example(task_name: Optional[str]) -> str:
    from ..tasks import tasks

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
