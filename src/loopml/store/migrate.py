"""Schema versions of the metadata store, applied with Alembic.

Opening a workspace reads the stored revision with one query; Alembic is imported only when a
migration has to run. Concurrent openers of a fresh store serialise on the store's write lock
(SQLite) or an advisory lock (PostgreSQL), so exactly one of them creates the tables.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from loopml.errors import WorkspaceTooNewError
from loopml.store.engine import write_transaction

HEAD = "0011"
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
ADVISORY_LOCK_KEY = 0x6C6F6F706D6C  # "loopml"


def stored_revision(connection: Connection) -> str | None:
    """The schema revision recorded in the store, or None for an empty store."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def ensure_schema(engine: Engine, location: str) -> None:
    """Create or upgrade the schema to HEAD; refuse a store made by a newer loopml."""
    with engine.connect() as connection:
        if stored_revision(connection) == HEAD:
            return
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"))
        current = stored_revision(connection)
        if current == HEAD:
            return
        _check_known(current, location)
        _upgrade(connection)


def _alembic_config(connection: Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _check_known(revision: str | None, location: str) -> None:
    if revision is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    script = ScriptDirectory(str(MIGRATIONS))
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise WorkspaceTooNewError(
            f"The workspace at {location} has schema revision '{revision}', which this "
            f"version of loopml does not know (it knows up to '{HEAD}'): it was created or "
            "upgraded by a newer loopml. Upgrade with: pip install --upgrade loopml"
        )


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")
