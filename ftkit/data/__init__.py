"""Reading a run's rows: the task's built-in data, JSONL/JSON/CSV/TSV/Parquet/CoNLL files or a saved ``datasets`` folder.

Rows come back with the task's own column names, after ``data.columns``
mapping, so every task reads the same shape whatever the source. Each row of
a file remembers where it came from (``row.where``: "reviews.csv line 9"), so
a message about it names the file's own line, not a position after the
train/eval shuffle. Every row is checked before anything trains: empty
values, and what the task itself refuses (``TaskSpec.check``).
"""
from __future__ import annotations

from .files import CONLL_SUFFIXES, Row, is_conll, read_source, shape_text, where  # noqa: F401
from .lengths import KEEP_WHOLE, TRUNCATION_WARN_SHARE, length_report, measure, preview, suggested_length  # noqa: F401
from .rows import SPLIT_SEED, check, check_rows, load_rows, map_columns  # noqa: F401
