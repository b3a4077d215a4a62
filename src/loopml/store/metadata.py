"""The metadata store: one SQL database, reached through transactions of two kinds."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from loopml.errors import StoreUnavailableError
from loopml.store.engine import create_engine, read_transaction, write_transaction
from loopml.store.migrate import ensure_schema

if TYPE_CHECKING:
    from loopml.store.operations import Operation

T = TypeVar("T")


class MetadataStore:
    """SQL metadata of a workspace (SQLite or PostgreSQL), schema kept at the current revision."""

    def __init__(self, url: str, *, busy_timeout: float = 60.0) -> None:
        self.engine = create_engine(url, busy_timeout=busy_timeout)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self.dialect = self.engine.dialect.name
        self._ready = False

    def ensure_schema(self) -> None:
        """Create or upgrade the tables once per process."""
        if self._ready:
            return
        try:
            ensure_schema(self.engine, self.url)
        except OperationalError as error:
            raise self._unavailable(error) from None
        self._ready = True

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may write; it holds the write lock from its start on SQLite."""
        self.ensure_schema()
        try:
            with write_transaction(self.engine) as connection:
                yield connection
        except OperationalError as error:
            raise self._unavailable(error) from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot."""
        self.ensure_schema()
        try:
            with read_transaction(self.engine) as connection:
                yield connection
        except OperationalError as error:
            raise self._unavailable(error) from None

    def perform(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        """Run an operation in a transaction of its own."""
        with self.write() if operation.write else self.read() as connection:
            return operation.function(connection, **arguments)

    def dispose(self, close: bool = True) -> None:
        """Release pooled connections (close=False after fork: forget the parent's)."""
        self.engine.dispose(close=close)

    def _unavailable(self, error: OperationalError) -> StoreUnavailableError:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return StoreUnavailableError(
            f"The metadata store at {self.url} failed: {reason}. Check that the database is "
            "reachable and writable (LOOPML_METADATA_URL), then retry."
        )


def insert_ignore(
    connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Iterable[str]
) -> None:
    """Insert rows, skipping those whose keys already exist."""
    if not rows:
        return
    statement = _insert_ignore(connection.dialect.name, table, tuple(keys))
    connection.execute(statement, list(rows))


@functools.cache
def _insert_ignore(dialect: str, table: sa.Table, keys: tuple[str, ...]) -> Any:
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))


def dialect_insert(connection: Connection, table: sa.Table):
    """The INSERT construct of the connection's dialect, which knows ON CONFLICT."""
    return _insert(connection.dialect.name, table)


def _insert(dialect: str, table: sa.Table):
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def cached_statement(build: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """A statement builder run once per dialect: built statements are reused, so SQLAlchemy
    finds them in its compiled cache instead of building and compiling them again."""
    built: dict[str, T] = {}

    def statement(connection: Connection) -> T:
        name = connection.dialect.name
        if name not in built:
            built[name] = build(connection)
        return built[name]

    return statement
