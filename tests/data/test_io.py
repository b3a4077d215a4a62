"""Reading sources as streams of record batches: CSV type inference across blocks."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pytest

from loopml.data import io
from loopml.data.io import open_stream
from loopml.data.profile import Profile


def sparse_csv(path: Path, rows: int) -> Path:
    """An id column, and a note column with a value only in its last row."""
    lines = ["id,note", *(f"{i}," for i in range(rows)), f"{rows},late value"]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["sparse.csv", "sparse.csv.gz"])
def test_a_csv_column_empty_in_the_first_block_is_read_as_text(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(io, "CSV_BLOCK_BYTES", 4096)  # types come from the first 4 KiB
    path = sparse_csv(tmp_path / name, rows=5000)
    stream = open_stream(path)
    assert stream.schema.field("note").type == pa.string()
    profile = Profile().fit(stream)
    assert (profile.rows_, profile["note"].count) == (5001, 1)
    assert profile["note"].top(1) == [("late value", 1)]


def test_a_csv_column_without_any_value_stays_untyped(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("a,b\n1,\n2,\n")
    assert open_stream(path).schema.field("b").type == pa.null()
