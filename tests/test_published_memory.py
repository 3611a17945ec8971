"""The estimator against published GPU measurements (bench/data/published_memory.json, bench/published.py).

Done-criteria of the memory model: over the rows with a published figure, the median absolute error is at
most 10 % and no row is off by more than 25 %; no run known to have fit is called "does not fit".
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import published  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return published.results()


def test_every_row_names_its_source_and_measure(rows):
    data = published.load()
    assert len(data["rows"]) >= 10
    for row in data["rows"]:
        assert row["source"] and row["measure"] and row["model"] in data["models"]


def test_median_error_within_ten_percent(rows):
    assert published.summary(rows)["median_abs_error"] <= published.MEDIAN_GOAL, published.table(rows)


def test_no_row_off_by_more_than_a_quarter(rows):
    bad = [r["row"] for r in rows if r["ratio"] is not None and abs(r["ratio"] - 1) > published.ROW_LIMIT]
    assert not bad, published.table(rows)


def test_no_wrong_does_not_fit(rows):
    assert not published.summary(rows)["wrong_does_not_fit"], published.table(rows)
