"""The event store's contract (append, seal, scan, find), run against a local folder and an
object store (S3, a moto server), with the processes of two "hosts" writing one log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from loopml.errors import UnknownSchemeError
from loopml.events.store import COMPACTION_GRACE, EventStore
from loopml.ids import new_event_id

HOUR = 3600
HOST_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from loopml.events.store import EventStore
    from loopml.ids import new_event_id
    url, spool, host, endpoint, count, options = sys.argv[1:7]
    store = EventStore(url, spool=spool, host=host, storage_options=json.loads(options))
    ids = [new_event_id() for _ in range(int(count))]
    log = store.writer("predictions")
    for found in ids:
        log.append({"id": found, "time": time.time(), "endpoint": endpoint, "status": "ok",
                    "inputs": {"x": 1.5}, "outputs": {"score": 0.5}})
    store.close()
    store.seal("predictions")
    print(json.dumps(ids))
    """
)


@pytest.fixture(params=["file", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """Where a log lives: its URL, options, and a spool folder per host."""
    if request.param == "file":
        return {"url": str(tmp_path / "events"), "options": {}, "shared": True, "base": tmp_path}
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return {
        "url": f"s3://{bucket}/events",
        "options": {"endpoint_url": endpoint},
        "shared": False,
        "base": tmp_path,
    }


def open_store(place: dict, host: str, **options) -> EventStore:
    return EventStore(
        place["url"],
        spool=place["base"] / f"spool-{host}",
        host=host,
        storage_options=place["options"],
        **options,
    )


def prediction(endpoint: str = "flights", moment: float | None = None, **fields) -> dict:
    moment = time.time() if moment is None else moment
    return {
        "id": new_event_id(moment),
        "time": moment,
        "endpoint": endpoint,
        "version": 1,
        "status": "ok",
        "inputs": {"carrier": "UA", "distance": 1400.0},
        "outputs": {"score": 0.25},
        **fields,
    }


def run_host(place: dict, host: str, endpoint: str, count: int) -> list[str]:
    """Another process, as another host, logs ``count`` predictions and seals them."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            HOST_SCRIPT,
            place["url"],
            str(place["base"] / f"spool-{host}"),
            host,
            endpoint,
            str(count),
            json.dumps(place["options"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_appended_events_are_scanned_and_found_before_and_after_sealing(place) -> None:
    store = open_store(place, "alpha")
    events = [prediction("flights") for _ in range(20)] + [prediction("taxis") for _ in range(5)]
    store.writer("predictions").append_many(events)
    before = store.snapshot("predictions").frame()
    assert sorted(before["id"]) == sorted(e["id"] for e in events)
    assert store.find("predictions", [events[0]["id"], events[-1]["id"], "nope"]) == {
        events[0]["id"]: "flights",
        events[-1]["id"]: "taxis",
    }
    store.close()
    assert store.seal("predictions") == 25
    after = store.snapshot("predictions").frame()
    assert sorted(after["id"]) == sorted(before["id"])
    assert after.loc[0, "input.carrier"] == "UA"
    assert set(store.snapshot("predictions", endpoint="taxis").frame()["id"]) == {
        e["id"] for e in events[-5:]
    }
    found = store.find("predictions", [e["id"] for e in events])
    assert found == {e["id"]: e["endpoint"] for e in events}
    assert store.seal("predictions") == 0


def test_two_hosts_write_one_log_that_a_third_reads_whole(place) -> None:
    first = run_host(place, "host-a", "flights", 300)
    second = run_host(place, "host-b", "taxis", 200)
    reader = open_store(place, "host-c")
    frame = reader.snapshot("predictions").frame()
    assert len(frame) == 500 and set(frame["id"]) == set(first) | set(second)
    found = reader.find("predictions", first[:3] + second[-3:])
    assert found == {**dict.fromkeys(first[:3], "flights"), **dict.fromkeys(second[-3:], "taxis")}


def test_a_host_never_seals_another_hosts_open_segment(place, tmp_path: Path) -> None:
    if not place["shared"]:
        pytest.skip("hosts of an object-store log spool apart: no segment is shared")
    clock = [time.time()]
    writer_host = open_store(place, "host-a", clock=lambda: clock[0])
    sealer = open_store(place, "host-b", clock=lambda: clock[0])
    writer_host.writer("predictions").append(prediction())
    open_segment = writer_host.writer("predictions").path
    # the writer's pid is alive on this machine, but it belongs to another host: only its age
    # tells whether it is abandoned
    assert sealer.seal("predictions") == 0 and open_segment.exists()
    clock[0] += HOUR
    assert sealer.seal("predictions") == 1 and not open_segment.exists()
    # the idle writer moves on to a new segment instead of writing into the sealed one
    writer_host.writer("predictions").append(prediction())
    assert writer_host.writer("predictions").path != open_segment
    assert len(sealer.snapshot("predictions").frame()) == 2


def test_a_snapshot_misses_nothing_while_a_seal_runs_between_its_listings(place) -> None:
    store = open_store(place, "alpha")
    events = [prediction() for _ in range(50)]
    store.writer("predictions").append_many(events)
    store.close()
    listed = store._files

    def seal_then_list(*args):
        store.seal("predictions")
        return listed(*args)

    def list_then_seal(*args):
        files = listed(*args)
        store.seal("predictions")
        return files

    for race in (seal_then_list, list_then_seal):
        store._files = race
        assert len(store.snapshot("predictions").frame()) == len(events)
        store._files = listed
        events.append(prediction())
        store.writer("predictions").append(events[-1])
        store.close()
    assert len(store.snapshot("predictions").frame()) == len(events)


def test_a_partly_sealed_segment_is_read_once(place) -> None:
    """A seal that wrote one partition of a segment and not yet another: readers take the
    segment, and neither lose its other events nor count the written ones twice."""
    store = open_store(place, "alpha")
    store.writer("predictions").append_many(
        [prediction("flights") for _ in range(4)] + [prediction("taxis") for _ in range(3)]
    )
    store.close()
    put, calls = store._put, []

    def crash_after_first(frame, path, metadata=None):
        if calls:
            raise OSError("disk full")
        calls.append(path)
        put(frame, path, metadata)

    store._put = crash_after_first
    with pytest.raises(OSError):
        store.seal("predictions")
    store._put = put
    assert len(store.snapshot("predictions").frame()) == 7
    assert store.seal("predictions") == 7
    assert len(store.snapshot("predictions").frame()) == 7


def test_reads_never_go_backwards_while_writers_and_sealers_run(place) -> None:
    store = open_store(place, "alpha", segment_bytes=4096)
    written, stop = [0], threading.Event()
    total = 3000 if place["shared"] else 400  # each of an object store's files is a request

    def write() -> None:
        while not stop.is_set() and written[0] < total:
            store.writer("predictions").append_many([prediction() for _ in range(10)])
            written[0] += 10

    def seal() -> None:
        while not stop.is_set():
            store.seal("predictions")

    threads = [threading.Thread(target=write), threading.Thread(target=seal)]
    for thread in threads:
        thread.start()
    counts = []
    try:
        for _ in range(25 if place["shared"] else 8):
            acknowledged = written[0]
            counts.append(len(store.snapshot("predictions").frame()))
            assert counts[-1] >= acknowledged
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert counts == sorted(counts)
    store.close()
    store.seal("predictions")
    assert len(store.snapshot("predictions").frame()) == written[0]


def test_an_id_sealed_between_the_two_searches_is_still_found(place) -> None:
    store = open_store(place, "alpha")
    event = prediction()
    store.writer("predictions").append(event)
    store.close()
    search = store._find_unsealed

    def then_seal(kind, ids):
        found = search(kind, ids)
        store.seal("predictions")
        return found

    store._find_unsealed = then_seal
    assert store.find("predictions", [event["id"]]) == {event["id"]: "flights"}


def test_feedback_for_a_prediction_still_spooled_elsewhere_is_resolved_when_sealed(
    place,
) -> None:
    made, told = open_store(place, "host-a"), open_store(place, "host-b")
    event = prediction()
    made.writer("predictions").append(event)
    if place["shared"]:
        assert told.find("predictions", [event["id"]]) == {event["id"]: "flights"}
        return
    assert told.find("predictions", [event["id"]]) == {}  # in host a's spool only
    told.writer("feedback").append(
        {
            "id": event["id"],
            "time": time.time(),
            "endpoint": "unknown",
            "label": 1,
            "status": "unknown_id",
        }
    )
    made.close()
    made.seal("predictions")
    told.close()
    told.seal("feedback")
    labels = told.snapshot("feedback", endpoint="flights").frame()
    assert list(labels["id"]) == [event["id"]] and list(labels["status"]) == ["ok"]


def test_compaction_merges_an_hours_files_and_keeps_every_event(place) -> None:
    start = (int(time.time()) // HOUR - 5) * HOUR
    clock = [float(start)]
    store = open_store(place, "alpha", clock=lambda: clock[0])
    ids = []
    for minute in range(6):
        clock[0] = start + minute * 60
        events = [prediction(moment=clock[0] + i) for i in range(10)]
        ids += [e["id"] for e in events]
        store.writer("predictions").append_many(events)
        store.close()
        store.seal("predictions")
    folder = f"{store.root}/predictions/endpoint=flights"
    assert len(store._files("predictions", "flights", None, None)) == 6
    clock[0] = start + 3 * HOUR
    assert store.compact("predictions") == 6
    listed = store._parquet(store._hours("predictions")[0])
    assert len(listed) == 7  # the merged file, and the replaced ones for a grace period
    frame = store.snapshot("predictions").frame()
    assert sorted(frame["id"]) == sorted(ids)  # each event once
    assert store.find("predictions", ids[:2] + ids[-2:]) == dict.fromkeys(
        ids[:2] + ids[-2:], "flights"
    )
    clock[0] += COMPACTION_GRACE + 1
    assert store.compact("predictions") == 0
    assert len(store._files("predictions", "flights", None, None)) == 1
    assert sorted(store.snapshot("predictions").frame()["id"]) == sorted(ids)
    assert folder.endswith("endpoint=flights")


def test_expiry_deletes_only_hours_past_retention(place) -> None:
    now = float((int(time.time()) // HOUR) * HOUR + 1800)
    store = open_store(place, "alpha", clock=lambda: now)
    old, recent = prediction(moment=now - 50 * HOUR), prediction(moment=now - 2 * HOUR)
    store.writer("predictions").append_many([old, recent])
    store.close()
    store.seal("predictions")
    assert store.expire("predictions", older_than=24 * HOUR) == 1
    assert list(store.snapshot("predictions").frame()["id"]) == [recent["id"]]


def test_ids_from_before_ids_had_a_time_are_found_by_a_full_scan(place) -> None:
    store = open_store(place, "alpha")
    legacy = {**prediction(), "id": "0123456789abcdef"}
    store.writer("predictions").append(legacy)
    store.close()
    store.seal("predictions")
    assert store.find("predictions", ["0123456789abcdef", "not-an-id"]) == {
        "0123456789abcdef": "flights"
    }


def test_a_durable_store_syncs_each_append_and_each_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    store = EventStore(str(tmp_path / "events"), durable=True)
    store.writer("predictions").append(prediction())
    store.writer("predictions").append(prediction())
    assert len(synced) >= 3  # the folder when the segment was made, then each append
    before = len(synced)
    store.close()
    store.seal("predictions")
    assert len(synced) >= before + 4  # the rename, the partition and its folder, the delete
    assert len(EventStore(str(tmp_path / "events")).snapshot("predictions").frame()) == 2


def test_an_unknown_scheme_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownSchemeError, match="'ftp://'.*file://.*s3://"):
        EventStore("ftp://somewhere/events", spool=tmp_path)


def test_two_compactions_at_once_still_read_each_event_once(place) -> None:
    start = (int(time.time()) // HOUR - 5) * HOUR
    clock = [float(start)]
    first = open_store(place, "alpha", clock=lambda: clock[0])
    second = open_store(place, "beta", clock=lambda: clock[0])
    ids = []
    for minute in range(3):
        clock[0] = start + minute * 60
        events = [prediction(moment=clock[0] + i) for i in range(5)]
        ids += [e["id"] for e in events]
        first.writer("predictions").append_many(events)
        first.close()
        first.seal("predictions")
    clock[0] = start + 3 * HOUR
    listed = first._parquet

    def as_if_alone(folder):  # the second compaction does not see the first's file
        return [f for f in listed(folder) if "compact-" not in f]

    assert first.compact("predictions") == 3
    second._parquet = as_if_alone
    clock[0] += 1
    assert second.compact("predictions") == 3
    assert sorted(first.snapshot("predictions").frame()["id"]) == sorted(ids)
    clock[0] += COMPACTION_GRACE + 1
    first.compact("predictions")
    assert len(first._files("predictions", None, None, None)) == 1
    assert sorted(first.snapshot("predictions").frame()["id"]) == sorted(ids)


def test_compacting_one_hour_leaves_the_same_segments_other_hours_whole(place) -> None:
    """A segment that spans two hours is sealed into a file of the same name in each: the
    merged file of one hour replaces its own folder's file only."""
    start = (int(time.time()) // HOUR - 5) * HOUR
    clock = [float(start)]
    store = open_store(place, "alpha", clock=lambda: clock[0])
    for _ in range(2):
        events = [prediction(moment=start + HOUR - 30), prediction(moment=start + HOUR + 30)]
        store.writer("predictions").append_many(events)
        store.close()
        store.seal("predictions")
    clock[0] = start + HOUR + 1800  # the first hour is over, the second is not
    assert store.compact("predictions") == 2
    assert len(store.snapshot("predictions").frame()) == 4
