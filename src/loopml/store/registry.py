"""Repository functions of the model registry: models, versions, aliases and the audit log.

Every change to a model happens in one write transaction that first locks the model's row
(SQLite: the transaction's write lock; PostgreSQL: SELECT ... FOR UPDATE), so concurrent
changes to one model queue, and the audit log's sequence numbers have no gaps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.ids import new_id
from loopml.store.metadata import insert_ignore
from loopml.store.pages import Sort, ordered
from loopml.store.schema import model_aliases, model_versions, models, registry_events


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One registered version of a model."""

    name: str
    version: int
    digest: str
    run_id: str | None
    flavor: str
    info: dict[str, Any]
    description: str | None
    created_by: str
    created_at: float
    aliases: tuple[str, ...] = ()
    card: dict[str, Any] | None = None  # the model card's artifacts, owner and intended use

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "digest": self.digest,
            "run_id": self.run_id,
            "flavor": self.flavor,
            "aliases": list(self.aliases),
            "description": self.description,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "card": self.card,
            "info": self.info,
        }


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One change in a model's audit log: who, when, what, from which version to which, why."""

    name: str
    sequence: int
    action: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sequence": self.sequence,
            "action": self.action,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at,
        }


def model_id(connection: Connection, name: str) -> str | None:
    """The id of a model, or None."""
    return connection.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()


def get_or_create_model(connection: Connection, name: str, now: float) -> str:
    """The id of the model called name, added if it does not exist (once, however many
    transactions add it at the same time)."""
    found = model_id(connection, name)
    if found is not None:
        return found
    insert_ignore(connection, models, [{"id": new_id(), "name": name, "created_at": now}], ["name"])
    return model_id(connection, name)  # type: ignore[return-value]  # exists now


def lock(connection: Connection, model: str) -> None:
    """Hold the model's row until the transaction ends (a no-op lock on SQLite, where the
    write transaction already excludes other writers)."""
    query = sa.select(models.c.id).where(models.c.id == model)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    connection.execute(query)


def model_names(
    connection: Connection, cursor: str | None = None, size: int | None = None
) -> list[str]:
    """Model names, sorted: every one, or a page of size after the cursor (see pages)."""
    query = ordered(sa.select(models.c.name), [Sort(models.c.name)], cursor, size)
    return list(connection.execute(query).scalars())


def next_version(connection: Connection, model: str) -> int:
    c = model_versions.c
    latest = connection.execute(sa.select(sa.func.max(c.version)).where(c.model_id == model))
    return (latest.scalar() or 0) + 1


def insert_version(connection: Connection, row: Mapping[str, Any]) -> None:
    """Add a version (its info as a dict; stored as JSON)."""
    connection.execute(model_versions.insert(), [{**row, "info": json.dumps(row["info"])}])


def versions(
    connection: Connection,
    model: str,
    name: str,
    cursor: str | None = None,
    size: int | None = None,
) -> list[VersionRecord]:
    """A model's versions, oldest first, with the aliases pointing at each: every one, or a
    page of size after the cursor (see pages)."""
    c = model_versions.c
    query = ordered(
        sa.select(model_versions).where(c.model_id == model), [Sort(c.version)], cursor, size
    )
    pointing: dict[int, list[str]] = {}
    for alias, version in aliases(connection, model).items():
        pointing.setdefault(version, []).append(alias)
    return [
        VersionRecord(
            name,
            row.version,
            row.digest,
            row.run_id,
            row.flavor,
            json.loads(row.info),
            row.description,
            row.created_by,
            row.created_at,
            tuple(sorted(pointing.get(row.version, []))),
            json.loads(row.card) if row.card else None,
        )
        for row in connection.execute(query)
    ]


def set_card(connection: Connection, model: str, version: int, card: Mapping[str, Any]) -> None:
    """Record where a version's model card is stored (written once per version)."""
    c = model_versions.c
    connection.execute(
        model_versions.update()
        .where(c.model_id == model, c.version == version)
        .values(card=json.dumps(dict(card)))
    )


def aliases(connection: Connection, model: str) -> dict[str, int]:
    """Alias → version, for one model."""
    c = model_aliases.c
    query = sa.select(c.alias, c.version).where(c.model_id == model).order_by(c.alias)
    return {row.alias: row.version for row in connection.execute(query)}


def set_alias(connection: Connection, model: str, alias: str, version: int, now: float) -> None:
    """Point an alias at a version (created or moved)."""
    c = model_aliases.c
    moved = connection.execute(
        model_aliases.update()
        .where(c.model_id == model, c.alias == alias)
        .values(version=version, updated_at=now)
    )
    if moved.rowcount == 0:
        connection.execute(
            model_aliases.insert().values(
                model_id=model, alias=alias, version=version, updated_at=now
            )
        )


def add_event(connection: Connection, model: str, event: Mapping[str, Any]) -> int:
    """Append to the model's audit log; returns the event's sequence number (1, 2, ...)."""
    c = registry_events.c
    last = connection.execute(sa.select(sa.func.max(c.sequence)).where(c.model_id == model))
    sequence = (last.scalar() or 0) + 1
    connection.execute(registry_events.insert().values(model_id=model, sequence=sequence, **event))
    return sequence


def events(
    connection: Connection,
    model: str,
    name: str,
    cursor: str | None = None,
    size: int | None = None,
) -> list[RegistryEvent]:
    """A model's audit log, oldest first: all of it, or a page of size after the cursor."""
    c = registry_events.c
    query = sa.select(
        c.sequence, c.action, c.alias, c.from_version, c.to_version, c.actor, c.reason, c.at
    ).where(c.model_id == model)
    query = ordered(query, [Sort(c.sequence)], cursor, size)
    return [RegistryEvent(name, *row) for row in connection.execute(query)]
