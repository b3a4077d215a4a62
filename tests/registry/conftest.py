"""The registry's store-level tests run on every metadata store: SQLite, PostgreSQL, and a
loopml server."""

from __future__ import annotations

import pytest

from loopml.workspace import Workspace


@pytest.fixture
def workspace(any_workspace: Workspace) -> Workspace:
    return any_workspace
