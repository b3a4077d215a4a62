"""Fixtures of the server tests: the workspace a real loopml server serves, its URL, and
workspaces that reach it holding a token of a role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopml.store import tokens as tokens_repo
from loopml.workspace import Workspace
from tests.conftest import make_workspace, running_server, served_workspace


@pytest.fixture
def server_settings() -> dict[str, object]:
    """Settings of the workspace behind the server; a test module overrides it."""
    return {}


@pytest.fixture
def behind(tmp_path: Path, server_settings: dict[str, object]) -> Iterator[Workspace]:
    """The workspace the server serves (SQLite, in the test's folder)."""
    ws = make_workspace(tmp_path / "server", **server_settings)
    yield ws
    ws.close()


@pytest.fixture
def url(behind: Workspace) -> Iterator[str]:
    """The base URL of a real loopml server over ``behind``."""
    with running_server(behind) as found:
        yield found


@pytest.fixture
def as_token(behind: Workspace, url: str, tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    """as_token(role, name=f"{role}-bot"): a workspace through the server, holding a new
    token of that role (its metadata through the server, its artifacts shared)."""
    made: list[Workspace] = []

    def make(role: str, name: str | None = None) -> Workspace:
        name = name or f"{role}-bot"
        secret = tokens_repo.create_token(behind.metadata, name, role, None).token
        made.append(served_workspace(behind, url, tmp_path / name, token=secret))
        return made[-1]

    yield make
    for ws in made:
        ws.close()
