"""Every list of the metadata store comes a page at a time, on SQLite, PostgreSQL and a
loopml server alike: the pages hold every row once, in order, and a row added while a client
pages is neither served twice nor makes another row be skipped."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

import loopml
from loopml.data import operations as data_ops
from loopml.errors import UsageError
from loopml.ids import new_id
from loopml.loop import operations as loop_ops
from loopml.monitoring import operations as monitoring_ops
from loopml.registry import operations as registry_ops
from loopml.serving import operations as serving_ops
from loopml.store import tokens as tokens_repo
from loopml.store.monitoring import WindowRecord
from loopml.store.pages import Page, encode, every
from loopml.tracking import operations as tracking_ops
from loopml.workspace import Workspace

SIZE = 2


def pages(fetch: Callable[..., Page[Any]], *args: Any) -> list[list[Any]]:
    """The pages of a list of SIZE items each, the last one perhaps shorter."""
    found, cursor = [], None
    while True:
        page = fetch(*args, page_size=SIZE, cursor=cursor)
        found.append(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def check(fetch: Callable[..., Page[Any]], *args: Any, key: Callable[[Any], Any]) -> list[Any]:
    """The list page by page holds every row once in order, as one big page has it."""
    paged = pages(fetch, *args)
    whole = fetch(*args, page_size=1000, cursor=None)
    flat = [item for page in paged for item in page]
    assert [key(i) for i in flat] == [key(i) for i in whole.items]
    assert len({key(i) for i in flat}) == len(flat) and whole.next_cursor is None
    assert [len(p) for p in paged[:-1]] == [SIZE] * (len(paged) - 1)
    assert len(paged) == max(1, math.ceil(len(flat) / SIZE))
    assert [key(i) for i in every(fetch, *args)] == [key(i) for i in flat]
    return flat


def window(endpoint: str, end: float, at: float) -> WindowRecord:
    return WindowRecord(new_id(), endpoint, end - 60, end, at, None, [1], 10, "ok")


def test_every_list_pages_its_rows_once_in_order(any_workspace: Workspace) -> None:
    store = any_workspace.metadata
    for name in ["b", "e", "a", "d", "c"]:
        tracking_ops.create_experiment(store, name)
    names = [e.name for e in check(tracking_ops.list_experiments, store, key=lambda e: e.name)]
    assert names == ["Default", "a", "b", "c", "d", "e"] or names == list("abcde")

    with loopml.start_run("pages") as parent:
        for i in range(5):
            parent.log_artifact(f"note {i}".encode(), f"notes/{4 - i}.txt")
            with loopml.start_run(name=f"child-{i}"):
                pass
    children = check(tracking_ops.child_runs, store, parent.id, key=lambda r: r.id)
    assert [r.name for r in children] == [f"child-{i}" for i in range(5)]
    notes = check(tracking_ops.list_artifacts, store, parent.id, key=lambda a: a.name)
    assert [a.name for a in notes] == [f"notes/{i}.txt" for i in range(5)]

    for name in ["m3", "m1", "m2"]:
        registry_ops.create_model(store, name)
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    for _ in range(3):
        loopml.models.register("m1", model)
    loopml.models.set_alias("m1", "staging", 1)
    loopml.models.set_alias("m1", "staging", 2)
    models = check(registry_ops.list_models, store, key=lambda m: m.name)
    assert [m.name for m in models] == ["m1", "m2", "m3"] and models[0].versions == 3
    versions = check(registry_ops.versions, store, "m1", key=lambda v: v.version)
    assert [v.version for v in versions] == [1, 2, 3]
    events = check(registry_ops.history, store, "m1", key=lambda e: e.sequence)
    assert [e.action for e in events] == ["register"] * 3 + ["alias"] * 2

    frame = pd.DataFrame({"x": [1, 2, 3]})
    for name in ["flights", "clicks", "weather"]:
        loopml.data.add(name, frame)
    for rows in range(4, 6):
        loopml.data.add("flights", pd.DataFrame({"x": range(rows)}))
    datasets = check(data_ops.list_datasets, store, key=lambda d: d.name)
    assert [d.name for d in datasets] == ["clicks", "flights", "weather"]
    snapshots = check(data_ops.list_snapshots, store, "flights", key=lambda s: s.id)
    assert [s.rows for s in snapshots] == [5, 4, 3]  # newest first

    for i in range(5):
        serving_ops.raise_alert(store, "api", "latency", f"slow {i}", {})
        loop_ops.record_decision(store, "api", "hold", f"decision {i}")
    alerts = check(serving_ops.list_alerts, store, "api", False, key=lambda a: a.id)
    assert [a.message for a in alerts] == [f"slow {i}" for i in range(5)]
    decisions = check(loop_ops.decisions, store, "api", key=lambda d: d.id)
    assert [d.message for d in decisions] == [f"decision {i}" for i in range(5)]

    now = time.time()
    made = [window("api", now + end, now) for end in (1, 2, 2, 2, 3)]  # ties in end and time
    for record in made:
        monitoring_ops.add_window(store, "api", record)
    windows = check(monitoring_ops.list_windows, store, "api", None, key=lambda w: w.id)
    assert [w.end for w in windows] == sorted(w.end for w in made)
    assert {w.id for w in windows} == {w.id for w in made}


def test_a_row_added_between_pages_is_served_once_and_skips_none(any_workspace) -> None:
    store = any_workspace.metadata
    for i in range(4):
        loop_ops.record_decision(store, "api", "hold", f"before {i}")
    first = loop_ops.decisions(store, "api", page_size=SIZE)
    loop_ops.record_decision(store, "api", "hold", "while paging")
    rest = list(every_after(loop_ops.decisions, first.next_cursor, store, "api"))
    messages = [d.message for d in first.items + rest]
    assert messages == [f"before {i}" for i in range(4)] + ["while paging"]

    for name in ["b", "d", "f"]:
        registry_ops.create_model(store, name)
    first = registry_ops.list_models(store, page_size=SIZE)
    registry_ops.create_model(store, "a")  # before the cursor: not this pass's to serve
    registry_ops.create_model(store, "e")  # after it: served
    rest = list(every_after(registry_ops.list_models, first.next_cursor, store))
    assert [m.name for m in first.items + rest] == ["b", "d", "e", "f"]


def every_after(fetch: Callable[..., Page[Any]], cursor: str | None, *args: Any) -> Any:
    while cursor is not None:
        page = fetch(*args, page_size=SIZE, cursor=cursor)
        yield from page.items
        cursor = page.next_cursor


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", encode({"after": [1]}), encode({"after": ["a", "b"]}), encode({"x": 1})],
)
def test_a_cursor_the_store_did_not_give_is_refused(any_workspace, cursor: str) -> None:
    registry_ops.create_model(any_workspace.metadata, "m")
    with pytest.raises(UsageError, match="not a cursor this server gave"):
        registry_ops.list_models(any_workspace.metadata, page_size=SIZE, cursor=cursor)


def test_tokens_page_by_name(sqlite_workspace: Workspace) -> None:
    for name in ["ci", "alice", "bob"]:
        tokens_repo.create_token(sqlite_workspace.metadata, name, "viewer", None)
    listed = check(tokens_repo.list_tokens, sqlite_workspace.metadata, key=lambda t: t.name)
    assert [t.name for t in listed] == ["alice", "bob", "ci"]
