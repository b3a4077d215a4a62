"""Snapshots: adding data from frames and files, finding it again, reading it back verified,
lineage and runs, and the errors that leave nothing behind. The tests of what is recorded run
on every metadata store: SQLite, PostgreSQL and a loopml server."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loopml
from loopml.errors import (
    ArtifactCorruptedError,
    ColumnNotFoundError,
    DataError,
    DatasetNotFoundError,
    LoopmlError,
    SnapshotNotFoundError,
    UsageError,
)
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace


@pytest.fixture
def workspace(any_workspace: Workspace) -> Workspace:
    return any_workspace


def small_frame(rows: int = 6, seed: int = 0) -> pd.DataFrame:
    """Every kind of column a user adds, with missing values where they can be."""
    rng = np.random.default_rng(seed)
    floats = rng.normal(size=rows)
    floats[1] = np.nan
    strings = [str(v) for v in rng.choice(["JFK", "LGA", "EWR"], rows)]
    strings[2] = None
    return pd.DataFrame(
        {
            "flight": rng.integers(1, 5000, rows),
            "delay": floats,
            "origin": strings,
            "cancelled": rng.random(rows) < 0.5,
            "departed": pd.date_range(
                "2013-01-01 05:00", periods=rows, freq="37min", tz="America/New_York"
            ),
        }
    )


def stored_objects(workspace: Workspace) -> set[Path]:
    return {p for p in (Path(workspace.artifacts.root) / "objects").rglob("*") if p.is_file()}


# --- adding and finding -------------------------------------------------------------------


def test_add_returns_a_snapshot_and_identical_content_is_stored_once(workspace: Workspace) -> None:
    frame = small_frame()
    snapshot = loopml.data.add("flights", frame)
    assert snapshot.ref == f"flights@{snapshot.id}"
    assert len(snapshot.id) == 16
    assert snapshot.rows == 6
    assert [c["name"] for c in snapshot.schema] == list(frame.columns)
    types = {c["name"]: c["type"] for c in snapshot.schema}
    assert types["flight"] == "int64" and types["origin"] == "string"
    assert types["departed"].startswith("timestamp[")
    assert "tz=America/New_York" in types["departed"]
    objects = stored_objects(workspace)

    again = loopml.data.add("flights", frame.copy())
    assert again.id == snapshot.id
    assert stored_objects(workspace) == objects
    assert [d.snapshot_count for d in loopml.data.list_datasets()] == [1]

    changed = frame.copy()
    changed.loc[0, "delay"] = 99.0
    other = loopml.data.add("flights", changed)
    assert other.id != snapshot.id
    assert len(stored_objects(workspace)) > len(objects)


def test_datasets_snapshots_and_references(workspace: Workspace) -> None:
    first = loopml.data.add("flights", small_frame(seed=1))
    second = loopml.data.add("flights", small_frame(seed=2))
    loopml.data.add("weather", small_frame(seed=3))

    listed = {d.name: d for d in loopml.data.list_datasets()}
    assert list(listed) == ["flights", "weather"]
    assert listed["flights"].snapshot_count == 2
    assert listed["flights"].latest_snapshot == second.id
    assert listed["flights"].latest_rows == 6

    assert [s.id for s in loopml.data.snapshots("flights")] == [second.id, first.id]
    assert loopml.data.get("flights").id == second.id
    assert loopml.data.get("flights@latest").id == second.id
    assert loopml.data.get(f"flights@{first.id[:6]}").id == first.id
    assert loopml.data.get(first.ref).id == first.id


def test_values_round_trip(sqlite_workspace: Workspace) -> None:
    frame = small_frame(rows=50)
    snapshot = loopml.data.add("flights", frame)
    back = loopml.data.load(snapshot.ref)
    pd.testing.assert_frame_equal(back, frame)
    assert np.isnan(back.loc[1, "delay"]) and pd.isna(back.loc[2, "origin"])
    assert str(back["departed"].dt.tz) == "America/New_York"
    assert back.loc[0, "departed"] == pd.Timestamp("2013-01-01 05:00", tz="America/New_York")
    only = snapshot.to_pandas(columns=["origin", "flight"])
    assert list(only.columns) == ["origin", "flight"]
    assert snapshot.to_arrow().num_rows == 50
    assert sum(b.num_rows for b in snapshot.batches()) == 50
    with pytest.raises(ColumnNotFoundError, match="no column 'dest'.*flight, delay"):
        snapshot.to_pandas(columns=["dest"])


# --- files ----------------------------------------------------------------------------------


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    text = frame.to_csv(index=False)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    elif path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(path.name.removesuffix(".zip"), text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("file_name", ["data.parquet", "data.csv", "data.csv.gz", "data.csv.zip"])
def test_add_from_a_file(sqlite_workspace: Workspace, tmp_path: Path, file_name: str) -> None:
    frame = pd.DataFrame(
        {
            "flight": [11, 22, 33, 44],
            "origin": ["JFK", None, "EWR", "LGA"],
            "delay": [1.5, -3.0, None, 12.25],
            "time_hour": pd.to_datetime(
                ["2013-01-01 05:00", "2013-01-01 06:00", "2013-01-02 07:00", "2013-01-03 08:00"]
            ),
        }
    )
    path = tmp_path / file_name
    if file_name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        write_csv(frame, path)
    snapshot = loopml.data.add("flights", path, time_column="time_hour")
    assert snapshot.source == str(path.resolve())
    assert snapshot.time_column == "time_hour"
    assert snapshot.rows == 4
    back = snapshot.to_pandas()
    assert back["flight"].tolist() == [11, 22, 33, 44]
    assert back["origin"].isna().tolist() == [False, True, False, False]
    assert back.loc[3, "delay"] == 12.25 and np.isnan(back.loc[2, "delay"])
    assert pd.Timestamp(back.loc[2, "time_hour"]) == pd.Timestamp("2013-01-02 07:00")
    assert loopml.data.get("flights").time_column == "time_hour"


def test_lineage_and_author(workspace: Workspace) -> None:
    raw = loopml.data.add("raw", small_frame(seed=1))
    clean = loopml.data.add("clean", small_frame(seed=1).dropna(), parent=raw.ref)
    assert clean.parent_id == raw.id
    assert raw.parent_id is None
    assert clean.created_by == current_user() and clean.created_by
    assert loopml.data.get("clean").parent_id == raw.id


# --- runs -----------------------------------------------------------------------------------


def test_runs_record_the_snapshots_they_add_and_read(workspace: Workspace) -> None:
    with loopml.start_run(experiment="prep") as producer:
        snapshot = loopml.data.add("flights", small_frame())
    assert snapshot.run_id == producer.id
    assert loopml.data.get("flights").run_id == producer.id
    outputs = loopml.list_artifacts(producer.id)
    assert [(a.direction, a.kind, a.name, a.digest) for a in outputs] == [
        ("output", "snapshot", snapshot.ref, snapshot.digest)
    ]

    with loopml.start_run(experiment="train") as consumer:
        loopml.data.load("flights")
    inputs = loopml.list_artifacts(consumer.id)
    assert [(a.direction, a.kind, a.name) for a in inputs] == [("input", "snapshot", snapshot.ref)]

    outside = loopml.data.add("other", small_frame(seed=5))
    assert outside.run_id is None


# --- contracts ------------------------------------------------------------------------------


def test_add_with_a_contract_reports_violations_and_still_stores(
    sqlite_workspace: Workspace,
) -> None:
    frame = small_frame(rows=20)
    contract = loopml.data.contract_for(frame)
    clean = loopml.data.add("flights", frame, contract=contract)
    assert clean.validation is not None and clean.validation.passed

    broken = frame.copy()
    broken.loc[3, "flight"] = 99_999
    broken.loc[4, "origin"] = "BOS"
    snapshot = loopml.data.add("flights", broken, contract=contract)
    report = snapshot.validation
    assert report is not None and not report.passed
    found = {(v.column, v.rule): v for v in report.violations}
    assert found[("flight", "max")].rows == [3]
    assert found[("flight", "max")].examples == [99_999]
    assert found[("origin", "categories")].examples == ["BOS"]
    assert loopml.data.get("flights").id == snapshot.id
    assert loopml.data.get("flights").rows == 20


# --- errors: a clear message, and nothing stored --------------------------------------------


def bad_sources(folder: Path) -> dict[str, tuple[object, type[LoopmlError], str]]:
    (folder / "book.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    good = folder / "good.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), good)
    corrupt = folder / "corrupt.parquet"
    corrupt.write_bytes(good.read_bytes()[:-200])  # the footer is gone
    (folder / "header.csv").write_text("a,b,c\n")
    return {
        "missing": (folder / "nowhere.csv", DataError, "No such file"),
        "xlsx": (folder / "book.xlsx", DataError, "unsupported file type .xlsx"),
        "corrupt": (corrupt, DataError, "Cannot read .*corrupt.parquet as Parquet"),
        "no rows": (folder / "header.csv", DataError, "no rows"),
        "names": (pd.DataFrame({"a": [1], 2: [3]}), DataError, "must be strings.*\\[2\\]"),
    }


def test_unusable_sources_and_bad_arguments_store_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    for case, (source, error, message) in bad_sources(tmp_path).items():
        with pytest.raises(error, match=message):
            loopml.data.add("flights", source)
        assert loopml.data.list_datasets() == [], case
        assert stored_objects(workspace) == set(), case

    existing = loopml.data.add("flights", small_frame())
    objects = stored_objects(workspace)
    with pytest.raises(ColumnNotFoundError, match="time column 'when'.*flight, delay, origin"):
        loopml.data.add("flights", small_frame(seed=9), time_column="when")
    with pytest.raises(UsageError, match="'bad name!' is not a valid dataset name"):
        loopml.data.add("bad name!", small_frame(seed=9))
    with pytest.raises(UsageError, match="'flights\\\\n' is not a valid dataset name"):
        loopml.data.add("flights\n", small_frame(seed=9))  # names are matched whole
    with pytest.raises(DatasetNotFoundError, match="'nope'"):
        loopml.data.add("flights", small_frame(seed=9), parent="nope")
    with pytest.raises(DataError, match="header.csv has no rows"):
        loopml.data.add("flights", tmp_path / "header.csv")
    assert [s.id for s in loopml.data.snapshots("flights")] == [existing.id]
    assert [d.name for d in loopml.data.list_datasets()] == ["flights"]
    assert stored_objects(workspace) == objects


def test_a_time_column_must_hold_timestamps_or_dates(workspace: Workspace, tmp_path: Path) -> None:
    frame = small_frame()
    cases = {
        "flight": ("int64", "unit='s'"),
        "delay": ("double", "pandas.to_datetime"),
        "origin": ("string", "ISO dates"),
        "cancelled": ("bool", "pandas.to_datetime"),
    }
    for column, (kind, fix) in cases.items():
        with pytest.raises(DataError, match=f"time column '{column}' holds {kind},") as caught:
            loopml.data.add("flights", frame, time_column=column)
        assert fix in str(caught.value)
    assert loopml.data.list_datasets() == []
    assert stored_objects(workspace) == set()

    path = tmp_path / "days.csv"  # ISO dates in a CSV file are read as dates
    path.write_text(
        "day,stamp,n\n2024-01-31,2024-01-31T05:00:00Z,1\n2024-02-01,2024-02-01T06:30:00Z,2\n"
    )
    by_day = loopml.data.add("days", path, time_column="day")
    assert by_day.time_column == "day" and by_day.schema[0]["type"] == "date32[day]"
    assert loopml.data.add("stamps", path, time_column="stamp").time_column == "stamp"
    with_dates = frame.assign(on=frame["departed"].dt.date)  # Python dates: date32
    assert loopml.data.add("dated", with_dates, time_column="on").time_column == "on"


def test_unknown_datasets_and_snapshots_list_the_known_ones(workspace: Workspace) -> None:
    snapshot = loopml.data.add("flights", small_frame())
    with pytest.raises(DatasetNotFoundError, match="No dataset is called 'nope'.*'flights'"):
        loopml.data.get("nope")
    with pytest.raises(DatasetNotFoundError, match="'nope'"):
        loopml.data.snapshots("nope")
    with pytest.raises(SnapshotNotFoundError, match=f"no snapshot 'ffff'.*{snapshot.id}"):
        loopml.data.get("flights@ffff")
    with pytest.raises(SnapshotNotFoundError, match="not a snapshot id"):
        loopml.data.get("flights@not-hex")


def test_duplicate_column_names_are_a_data_error(sqlite_workspace: Workspace) -> None:
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"])
    with pytest.raises(DataError, match="duplicate column names.*'a'"):
        loopml.data.add("flights", frame)
    assert loopml.data.list_datasets() == []


# --- integrity ------------------------------------------------------------------------------


def test_a_tampered_snapshot_is_refused(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    snapshot = loopml.data.add("flights", small_frame(rows=200))
    assert len(snapshot.to_pandas()) == 200  # fills the local cache
    cached = workspace.home / "cache" / "objects" / snapshot.digest
    assert cached.is_file()

    stored = Path(workspace.artifacts.path_of(snapshot.digest))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    cached.unlink()
    with pytest.raises(ArtifactCorruptedError, match="is corrupted"):
        loopml.data.load("flights")
    assert not cached.exists()


def test_a_damaged_cached_copy_is_fetched_again(sqlite_workspace: Workspace) -> None:
    frame = small_frame(rows=30)
    snapshot = loopml.data.add("flights", frame)
    snapshot.to_pandas()
    cached = sqlite_workspace.home / "cache" / "objects" / snapshot.digest
    cached.write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(loopml.data.load("flights"), frame)


# --- large files ----------------------------------------------------------------------------


def test_a_large_parquet_file_is_streamed(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    rows = 2_500_000
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(
        path, pa.schema([("id", pa.int64()), ("delay", pa.float64()), ("origin", pa.string())])
    ) as writer:
        for start in range(0, rows, 1_000_000):
            count = min(1_000_000, rows - start)
            delay = rng.normal(size=count)
            delay[::10] = np.nan
            origin = pa.array(["JFK", "LGA", "EWR", "BOS", "SFO"] * (count // 5))
            writer.write_table(
                pa.table({"id": np.arange(start, start + count), "delay": delay, "origin": origin})
            )
    snapshot = loopml.data.add("big", path)
    assert snapshot.rows == rows
    profile = snapshot.profile()
    assert profile.rows_ == rows
    assert profile["id"].count == rows and profile["id"].nulls == 0
    assert profile["id"].min == 0 and profile["id"].max == rows - 1
    assert abs(profile["id"].distinct - rows) < 0.03 * rows
    assert profile["delay"].nulls == rows // 10
    assert profile["delay"].count == rows - rows // 10
    assert dict(profile["origin"].top(5)) == {
        o: rows // 5 for o in ["JFK", "LGA", "EWR", "BOS", "SFO"]
    }
    assert pq.ParquetFile(snapshot.path()).metadata.num_rows == rows
