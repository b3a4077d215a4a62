"""Request bodies read into tables: plain records take Arrow's one-call path, and anything
else is read column by column to say what is wrong; both give the same table."""

from __future__ import annotations

import pytest

from loopml.serving import payloads
from loopml.serving.feedback import RecentIds
from loopml.serving.payloads import PayloadError


def slow(rows: list[dict]) -> dict:
    """The column-by-column reading of the same records, as a dict of lists."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return payloads._frame({n: [row.get(n) for row in rows] for n in names}).to_pydict()


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        [{"a": 1}, {"b": "late", "a": 2}, {}],  # a column named only by a later record
        [{"a": 1.5, "b": None}, {"a": 2, "b": True}],
        [{"a": None}, {"a": None}],
        [{"x": i * 0.5, "k": f"c{i % 3}", "n": i, "f": i % 2 == 0} for i in range(200)],
    ],
    ids=["plain", "late-column", "ints-among-floats", "all-null", "wide"],
)
def test_plain_records_read_as_column_by_column(rows) -> None:
    table = payloads.records_frame({"records": rows})
    assert payloads._struct_table(rows) is not None
    assert table.to_pydict() == slow(rows)
    assert table.column_names == list(dict.fromkeys(n for row in rows for n in row))


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"a": 1.5}, {"a": True}], "a:"),  # Arrow alone would make it 1.0
        ([{"a": 1}, {"a": "one"}], "a:"),
        ([{"a": [1, 2]}], "a: expected"),
        ([{"a": {"b": 1}}], "a: expected"),
    ],
    ids=["bool-among-floats", "mixed", "list", "object"],
)
def test_records_that_are_not_plain_are_refused_by_column(rows, fragment) -> None:
    assert payloads._struct_table(rows) is None
    with pytest.raises(PayloadError) as refused:
        payloads.records_frame({"records": rows})
    assert any(fragment in p["message"] for p in refused.value.problems), refused.value.problems


def test_an_integer_beyond_64_bits_is_read_as_a_float_by_the_column_path() -> None:
    rows = [{"a": 2**70}]
    assert payloads._struct_table(rows) is None
    assert payloads.records_frame(rows).to_pydict() == {"a": [float(2**70)]}


def test_recent_ids_keep_the_newest_and_forget_the_oldest() -> None:
    recent = RecentIds(size=10)
    for start in range(0, 30, 3):
        recent.add([f"id{i}" for i in range(start, start + 3)], "churn")
    assert all(recent.get(f"id{i}") == "churn" for i in range(25, 30))  # the newest half
    assert recent.get("id0") is None and recent.get("nope") is None
