"""Shared fixtures: an isolated environment per test, workspaces on SQLite and PostgreSQL, and
``cli``, which runs `loopml ...` in this process and captures what it prints.

PostgreSQL tests use a real server ($LOOPML_TEST_POSTGRES_URL, default the local one), each in
a schema of its own that is dropped afterwards. Where no server answers they are skipped,
unless LOOPML_TEST_POSTGRES_REQUIRED=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from loopml.settings import load_settings
from loopml.workspace import Workspace, close_opened_workspaces, use_workspace

POSTGRES_URL = os.environ.get(
    "LOOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
POSTGRES_REQUIRED = os.environ.get("LOOPML_TEST_POSTGRES_REQUIRED") == "1"
KEEP_ENV = {"LOOPML_TEST_POSTGRES_URL", "LOOPML_TEST_POSTGRES_REQUIRED"}


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No LOOPML_* settings leak in, and every test works in its own folder."""
    for name in list(os.environ):
        if name.startswith("LOOPML_") and name not in KEEP_ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    close_opened_workspaces()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) on 127.0.0.1."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs (loopml[s3]) is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the local S3 server, with test credentials in the environment."""
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"loopml-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir(bucket)
    return bucket


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a reachable PostgreSQL server, or a skip (a failure when required)."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        reason = f"PostgreSQL is not reachable at {POSTGRES_URL}: {str(error.orig).strip()}"
        if POSTGRES_REQUIRED:
            pytest.fail(f"{reason} (LOOPML_TEST_POSTGRES_REQUIRED=1)")
        pytest.skip(f"{reason}. Set LOOPML_TEST_POSTGRES_URL to a server to run these tests.")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"loopml_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A metadata store URL: the same tests run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    return request.getfixturevalue("postgres_url")


def make_workspace(folder: Path, metadata_url: str | None = None, **settings: object) -> Workspace:
    """A prepared workspace in folder (SQLite there unless metadata_url is given)."""
    overrides = {"home": str(folder / ".loopml"), **settings}
    if metadata_url:
        overrides["metadata_url"] = metadata_url
    return Workspace(load_settings(cwd=folder, **overrides)).prepare()


@contextmanager
def running_server(workspace: Workspace, port: int | None = None) -> Iterator[str]:
    """A real loopml server (uvicorn, in a thread) over a workspace, on a free port unless
    one is given: its base URL."""
    import uvicorn

    from loopml.server.app import create_server

    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_server(workspace), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the loopml server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def served_workspace(server: Workspace, url: str, folder: Path, **settings: object) -> Workspace:
    """A workspace whose metadata goes through the loopml server at url; it shares the
    server workspace's artifact and event stores."""
    return make_workspace(
        folder,
        server_url=url,
        artifacts_url=server.artifacts.url,
        events_url=server.settings.events_url,
        **settings,
    )


@pytest.fixture
def http_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose metadata goes through a real loopml server over SQLite."""
    behind = make_workspace(tmp_path / "server")
    with running_server(behind) as url:
        ws = served_workspace(behind, url, tmp_path)
        yield ws
        ws.close()
    behind.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "server"])
def any_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each metadata store, current for the test: SQLite, PostgreSQL, and a
    real loopml server (over SQLite) reached through HTTP."""
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


@pytest.fixture
def workspace(metadata_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each metadata backend, current for the test."""
    ws = make_workspace(tmp_path, metadata_url)
    with use_workspace(ws):
        yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A SQLite workspace, current for the test."""
    ws = make_workspace(tmp_path)
    with use_workspace(ws):
        yield ws
    ws.close()


@pytest.fixture
def new_workspace(tmp_path: Path) -> Iterator[object]:
    """Make extra SQLite workspaces in the test folder with chosen settings; closed after."""
    made: list[Workspace] = []

    def make(metadata_url: str | None = None, **settings: object) -> Workspace:
        made.append(make_workspace(tmp_path, metadata_url, **settings))
        return made[-1]

    yield make
    for ws in made:
        ws.close()


@dataclass
class Result:
    """What a command returned and printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `loopml ARGS...` in this process and capture what it prints."""

    def invoke(*args: object) -> Result:
        monkeypatch.setattr(sys, "argv", ["loopml", *map(str, args)])
        capsys.readouterr()
        try:
            from loopml.cli.main import main

            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
