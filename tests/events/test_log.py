"""The event log: appended before acknowledged, sealed into Parquet by endpoint and hour,
read back with DuckDB; a process killed with SIGKILL loses no acknowledged event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopml.errors import UsageError
from loopml.events import SegmentWriter, closed_segments, read_events, read_segment, seal, writer

HOUR = 3600


def event(number: int, endpoint: str = "flights", moment: float | None = None) -> dict:
    return {
        "id": f"p{number}",
        "time": moment if moment is not None else time.time(),
        "endpoint": endpoint,
        "version": 3,
        "inputs": {"carrier": "UA", "distance": 1400 + number},
        "outputs": {"score": 0.25},
        "status": "ok",
    }


def test_segments_roll_by_size_and_close(tmp_path: Path) -> None:
    log = SegmentWriter(tmp_path, "predictions", max_bytes=4096)
    for number in range(60):
        log.append(event(number))
    assert len(closed_segments(tmp_path, "predictions")) >= 2  # full ones are closed
    open_now = list(tmp_path.glob("*.open.jsonl"))
    assert len(open_now) == 1
    log.close()
    segments = closed_segments(tmp_path, "predictions")
    read = [e["id"] for s in segments for e in read_segment(s.path)]
    assert sorted(read, key=lambda i: int(i[1:])) == [f"p{n}" for n in range(60)]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "predictions.1.2.3.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "ti')
    assert [e["id"] for e in read_segment(path)] == ["a", "b"]


def test_open_segments_of_live_writers_wait_those_of_dead_ones_do_not(tmp_path: Path) -> None:
    alive = tmp_path / f"predictions.{os.getppid()}.1.1.open.jsonl"
    dead = tmp_path / "predictions.999999999.1.1.open.jsonl"
    for path in (alive, dead):
        path.write_text('{"id": "x", "time": 1}\n')
    assert [s.path for s in closed_segments(tmp_path, "predictions")] == [dead]


def test_sealing_writes_partitions_by_endpoint_and_hour(sqlite_workspace) -> None:
    log = writer(sqlite_workspace, "predictions")
    start = (int(time.time()) // HOUR - 2) * HOUR
    log.append_many([event(1, "flights", start + 10), event(2, "flights", start + HOUR + 5)])
    log.append(event(3, "taxis", start + 20))
    log.close()
    assert seal("predictions") == 3
    folder = Path(sqlite_workspace.home) / "events" / "predictions"
    partitions = sorted(p.parent.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime(start))
    assert partitions[0] == f"endpoint=flights/hour={hour}" and len(partitions) == 3
    assert not list((Path(sqlite_workspace.home) / "events" / "segments").glob("*.jsonl"))
    everything = read_events("predictions")
    assert list(everything["id"]) == ["p1", "p3", "p2"]  # by time
    first = everything.loc[0]
    assert (first["input.carrier"], first["input.distance"]) == ("UA", 1401)
    assert list(read_events("predictions", endpoint="taxis")["id"]) == ["p3"]
    assert list(read_events("predictions", since=start + HOUR)["id"]) == ["p2"]
    assert seal("predictions") == 0


def test_unsealed_events_are_read_too(sqlite_workspace) -> None:
    log = writer(sqlite_workspace, "feedback")
    log.append({"id": "p1", "time": time.time(), "label": True})
    found = read_events("feedback")
    assert list(found["id"]) == ["p1"] and found.loc[0, "endpoint"] == "default"
    assert read_events("predictions").empty
    with pytest.raises(UsageError, match="Events are one of"):
        read_events("metrics")


@pytest.mark.slow
def test_a_killed_writer_loses_no_acknowledged_event(tmp_path: Path) -> None:
    script = tmp_path / "write.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from loopml.events import SegmentWriter
            log = SegmentWriter(sys.argv[1], "predictions", max_bytes=20_000)
            for number in range(1_000_000):
                log.append({"id": f"p{number}", "time": time.time(), "pad": "x" * 64})
                print(number, flush=True)  # acknowledged: the append returned
            """
        )
    )
    folder = tmp_path / "segments"
    process = subprocess.Popen(
        [sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True
    )
    acknowledged = []
    for line in process.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 3000:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    acknowledged += [int(line) for line in process.stdout.read().split()]
    logged = {
        int(e["id"][1:])
        for s in closed_segments(folder, "predictions")
        for e in read_segment(s.path)
    }
    assert set(acknowledged) <= logged
    assert len(logged) >= 3000
