"""SQLAlchemy engines for the metadata store, tuned per backend.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead of failing
with "database is locked" when a read would have to be upgraded to a write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from loopml.errors import ConfigError, MetadataCorruptedError, UnknownSchemeError
from loopml.settings import hide_password

KNOWN_SCHEMES = {
    "sqlite": "sqlite:///path/to/metadata.db",
    "postgresql": "postgresql+psycopg://user@host:5432/database",
}
WRITE_OPTION = "loopml_write"


def normalize_url(url: str) -> sa.URL:
    """Parse a metadata URL, choosing psycopg 3 for PostgreSQL; unknown schemes are refused."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UnknownSchemeError(_unknown_scheme_message(url)) from None
    backend = parsed.get_backend_name()
    if backend not in KNOWN_SCHEMES:
        raise UnknownSchemeError(_unknown_scheme_message(url))
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _unknown_scheme_message(url: str) -> str:
    known = ", ".join(KNOWN_SCHEMES.values())
    return (
        f"Cannot open metadata store '{hide_password(url)}': unknown URL scheme. "
        f"Known schemes: {known}. Set LOOPML_METADATA_URL or metadata_url in loopml.toml."
    )


def create_engine(url: str, *, busy_timeout: float = 60.0) -> Engine:
    """An engine for a SQLite or PostgreSQL metadata store."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout)
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_engine(url: sa.URL, busy_timeout: float) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"Cannot create the folder of SQLite database '{database}': {error.strerror}. "
                "Choose a writable path in LOOPML_METADATA_URL or LOOPML_HOME."
            ) from None
    engine = sa.create_engine(
        url, connect_args={"timeout": busy_timeout, "check_same_thread": False}
    )
    timeout_ms = int(busy_timeout * 1000)
    checked: list[bool] = []  # the file is checked once per engine, at its first connection

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not checked:
                (verdict,) = cursor.execute("PRAGMA quick_check(1)").fetchone()
                if verdict != "ok":
                    raise sqlite3.DatabaseError(verdict)
                checked.append(True)
        except sqlite3.DatabaseError as error:
            raise MetadataCorruptedError(corrupted_message(database, error)) from None
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def corrupted_message(database: str, error: BaseException) -> str:
    """What to say of a damaged SQLite file, and what to do."""
    return (
        f"The metadata store {database} is damaged ({error}); loopml neither reads nor writes "
        f"it. Restore it from a backup, or recover what it holds with `sqlite3 {database} "
        f".recover | sqlite3 recovered.db` and point LOOPML_METADATA_URL at the copy."
    )


@contextmanager
def _translated(engine: Engine) -> Iterator[None]:
    """Damage found by a statement, not at connection, said as at connection (the
    transaction that met it is rolled back: nothing of it is written)."""
    try:
        yield
    except sa.exc.DatabaseError as error:
        if engine.dialect.name != "sqlite" or not isinstance(error.orig, sqlite3.DatabaseError):
            raise
        text = str(error.orig)
        if "malformed" not in text and "not a database" not in text:
            raise
        raise MetadataCorruptedError(
            corrupted_message(engine.url.database or "", error.orig)
        ) from None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the write lock from its first statement."""
    with _translated(engine), engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction: one consistent snapshot."""
    with _translated(engine), engine.connect() as connection, connection.begin():
        yield connection
