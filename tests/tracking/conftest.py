"""Tracking tests run on every metadata store: SQLite, PostgreSQL, and a loopml server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.workspace import Workspace, use_workspace
from tests.conftest import make_workspace


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "server"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each metadata store, current for the test; "server" reaches a real
    loopml server (over SQLite) through HTTP."""
    if request.param == "server":
        ws = request.getfixturevalue("http_workspace")
    else:
        url = f"sqlite:///{tmp_path / 'metadata.db'}"
        if request.param == "postgres":
            url = request.getfixturevalue("postgres_url")
        ws = make_workspace(tmp_path, url)
    with use_workspace(ws):
        yield ws
    if request.param != "server":
        ws.close()
