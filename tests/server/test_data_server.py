"""Datasets through a loopml server with tokens: a viewer reads snapshots but cannot add one,
an editor adds them under its token's name, an unknown dataset is not found, and an HTTP caller
cannot record what ``loopml.data.add`` would refuse."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pandas as pd
import pytest

import loopml
from loopml.data import operations as ops
from loopml.errors import AccessDeniedError, DatasetNotFoundError, UsageError
from loopml.store import tokens as tokens_repo

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def test_a_viewer_lists_snapshots_an_editor_adds_them(behind, as_token) -> None:
    viewer, editor = as_token("viewer", "ana"), as_token("editor", "ci-bot")
    first = loopml.data.add("flights", FRAME, workspace=behind)
    assert [s.id for s in loopml.data.snapshots("flights", workspace=viewer)] == [first.id]
    assert loopml.data.get("flights", workspace=viewer).rows == 3
    with pytest.raises(AccessDeniedError, match="'ana' has the role viewer; this needs editor"):
        loopml.data.add("flights", FRAME.iloc[:2], workspace=viewer)
    assert [d.snapshot_count for d in loopml.data.list_datasets(workspace=behind)] == [1]

    added = loopml.data.add("flights", FRAME.iloc[:2], parent=first.ref, workspace=editor)
    assert (added.created_by, added.parent_id, added.rows) == ("ci-bot", first.id, 2)
    assert loopml.data.load(added.ref, workspace=viewer).equals(FRAME.iloc[:2])
    assert loopml.data.add("flights", FRAME.iloc[:2], workspace=editor).id == added.id


def test_an_unknown_dataset_is_not_found(behind, as_token, url: str) -> None:
    viewer = as_token("viewer", "ana")
    loopml.data.add("flights", FRAME, workspace=behind)
    with pytest.raises(DatasetNotFoundError, match="No dataset is called 'nope'.*'flights'"):
        loopml.data.get("nope", workspace=viewer)
    with pytest.raises(DatasetNotFoundError, match="'nope'"):
        loopml.data.snapshots("nope", workspace=viewer)
    secret = tokens_repo.create_token(behind.metadata, "eve", "viewer", None).token
    answer = httpx.get(
        f"{url}/api/v1/datasets/nope/snapshots", headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "DatasetNotFoundError"


def test_a_caller_cannot_record_what_the_sdk_refuses(behind, as_token) -> None:
    editor = as_token("editor", "ci-bot")
    first = loopml.data.add("flights", FRAME, workspace=behind)
    new = ops.NewSnapshot(
        digest=first.digest,
        rows=first.rows,
        size=first.size,
        schema=[ops.Column(c["name"], c["type"]) for c in first.schema],
        profile_digest=first.profile_digest,
        source="elsewhere",
        created_by="ci-bot",
    )
    with pytest.raises(UsageError, match="not a valid dataset name"):
        ops.add_snapshot(editor.metadata, "bad name!", new)
    with pytest.raises(UsageError, match="time column 'when' is not a column"):
        ops.add_snapshot(editor.metadata, "other", replace(new, time_column="when"))
    with pytest.raises(UsageError, match="immutable"):  # the same content, another time column
        ops.add_snapshot(editor.metadata, "flights", replace(new, time_column="a"))
    with pytest.raises(UsageError, match="refused data.add_snapshot.*rows"):
        ops.add_snapshot(editor.metadata, "flights", replace(new, rows=0))
    assert [d.name for d in loopml.data.list_datasets(workspace=behind)] == ["flights"]
    assert ops.add_snapshot(editor.metadata, "flights", new).id == first.id
