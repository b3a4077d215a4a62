"""The registry operations of the metadata store (see loopml.store.operations): models,
versions, aliases, the audit log, cards and references, each one unit of work.

Every change to a model locks its row first, so concurrent changes queue and the audit log's
sequence numbers have no gaps; the change and its audit event are one transaction. Moving an
alias that ``protected_aliases`` names needs an admin's token on a server.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import ModelNotFoundError, UsageError
from loopml.store import monitoring as references_repo
from loopml.store import registry as repo
from loopml.store import runs as runs_repo
from loopml.store.operations import Role, current_actor, operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, page
from loopml.store.registry import RegistryEvent, VersionRecord
from loopml.tracking.operations import NO_NUL, Name, Text
from loopml.tracking.validation import INT64

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")  # fits in a URL path segment
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")

Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]
Expected = Annotated[int, Field(ge=0, le=2**31 - 1)]
AliasAction = Literal["alias", "promote", "force", "rollback"]


@dataclass(frozen=True)
class NewVersion:
    """What a version is registered with; user: who the client runs as."""

    digest: Digest
    flavor: Annotated[str, Field(min_length=1, max_length=32, pattern=NO_NUL)]
    info: dict[str, Any]
    user: Name
    run_id: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    description: Text | None = None


@dataclass(frozen=True)
class StoredReference:
    """The record of a version's monitoring reference: its digest and number of rows."""

    digest: Digest
    rows: Annotated[int, Field(ge=0, le=INT64[1])]


@dataclass(frozen=True)
class Card:
    """Where a version's model card is stored, with its owner and intended use."""

    markdown: Digest
    html: Digest
    owner: Text | None = None
    intended_use: Text | None = None


@dataclass(frozen=True)
class ModelSummary:
    """A model: how many versions, its latest, its aliases, when it last got a version."""

    name: str
    versions: int
    latest: int | None
    aliases: dict[str, int]
    updated_at: float | None


def alias_role(arguments: dict[str, Any], settings: Any) -> Role:
    """Moving a protected alias (the setting protected_aliases) needs an admin."""
    return "admin" if arguments.get("alias") in settings.protected_aliases else "editor"


@operation("POST /models/{name}/versions")
def register_version(
    connection: Connection,
    name: str,
    version: NewVersion,
    reference: StoredReference | None = None,
) -> VersionRecord:
    """Add the next version of a model (and the model, the first time), with the record of
    its reference if given, and its audit event, in one transaction."""
    check_model_name(name)
    run_id = runs_repo.resolve_id(connection, version.run_id) if version.run_id else None
    now, actor = time.time(), current_actor(version.user)
    model = repo.get_or_create_model(connection, name, now)
    repo.lock(connection, model)
    number = repo.next_version(connection, model)
    row = {
        "model_id": model,
        "version": number,
        "digest": version.digest,
        "run_id": run_id,
        "flavor": version.flavor,
        "info": version.info,
        "description": version.description,
        "created_by": actor,
        "created_at": now,
    }
    repo.insert_version(connection, row)
    if reference is not None:
        references_repo.set_reference(
            connection, model, number, reference.digest, reference.rows, now
        )
    event = {"action": "register", "to_version": number, "actor": actor, "at": now}
    repo.add_event(connection, model, event)
    del row["model_id"]
    return VersionRecord(name, **{**row, "info": json.loads(json.dumps(version.info))})


@operation("POST /models")
def create_model(connection: Connection, name: str) -> ModelSummary:
    """Register a model without versions yet (registering a version does it too); nothing
    changes when it exists."""
    check_model_name(name)
    repo.get_or_create_model(connection, name, time.time())
    return _summary(connection, name)


@operation("GET /models")
def list_models(
    connection: Connection, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[ModelSummary]:
    """The models, by name, a page at a time (see loopml.store.pages)."""
    names = page(repo.model_names(connection, cursor, page_size), page_size, lambda n: (n,))
    return Page([_summary(connection, name) for name in names.items], names.next_cursor)


@operation("GET /models/{name}/versions")
def versions(
    connection: Connection, name: str, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[VersionRecord]:
    """A model's versions, oldest first, a page at a time."""
    found = repo.versions(connection, require_model(connection, name), name, cursor, page_size)
    return page(found, page_size, lambda v: (v.version,))


@operation("GET /models/{name}/resolve")
def get_version(connection: Connection, name: str, which: str | None = None) -> VersionRecord:
    """The version that ``which`` names: a version number or an alias; the latest without."""
    model = require_model(connection, name)
    found = repo.versions(connection, model, name)
    if not found:
        raise ModelNotFoundError(f"Model {name!r} has no versions yet.")
    if not which:
        return found[-1]
    named = repo.aliases(connection, model)
    number = _number(which)
    number = named.get(which) if number is None else number
    for record in found:
        if record.version == number:
            return record
    raise ModelNotFoundError(
        f"Model {name!r} has no version or alias {which!r}. Versions: 1 to {found[-1].version}; "
        f"aliases: {', '.join(named) or 'none'}."
    )


@operation("GET /models/{name}/numbers")
def version_numbers(
    connection: Connection, name: str, selectors: list[str] | None = None
) -> dict[str, int]:
    """The version each selector (a number or an alias) names, without loading the versions;
    selectors that name no version are left out."""
    model = require_model(connection, name)
    latest = repo.next_version(connection, model) - 1
    named = repo.aliases(connection, model)
    found = {}
    for selector in selectors or []:
        number = _number(selector)
        number = named.get(selector) if number is None else number
        if number is not None and 1 <= number <= latest:
            found[selector] = number
    return found


@operation("PUT /models/{name}/aliases/{alias}", needs=alias_role)
def set_alias(
    connection: Connection,
    name: str,
    alias: str,
    version: Version,
    user: Name,
    reason: Text | None = None,
    action: AliasAction = "alias",
    expected: Expected | None = None,
) -> RegistryEvent | None:
    """Point an alias at a version, with its audit event. With ``expected``, only if the
    alias still points at that version (0: at none); else None, and nothing changes."""
    check_alias(alias)
    if action not in get_args(AliasAction):
        raise UsageError(f"An alias moves by {', '.join(get_args(AliasAction))}; not {action!r}.")
    model = require_model(connection, name)
    repo.lock(connection, model)
    if version not in {v.version for v in repo.versions(connection, model, name)}:
        raise ModelNotFoundError(f"Model {name!r} has no version {version}.")
    current = repo.aliases(connection, model).get(alias)
    if expected is not None and (current or 0) != expected:
        return None
    return _move(connection, model, name, action, alias, current, version, user, reason)


@operation("POST /models/{name}/aliases/{alias}/rollback", needs=alias_role)
def rollback(
    connection: Connection,
    name: str,
    alias: str,
    user: Name,
    reason: Text | None = None,
    expected: Expected | None = None,
) -> RegistryEvent | None:
    """Return an alias to the version it pointed at before its current one, with its audit
    event. With ``expected``, only if the alias still points at that version (else None)."""
    model = require_model(connection, name)
    repo.lock(connection, model)
    current = repo.aliases(connection, model).get(alias)
    if current is None:
        raise ModelNotFoundError(f"Model {name!r} has no alias {alias!r} to roll back.")
    if expected is not None and current != expected:
        return None
    previous = _previous(repo.events(connection, model, name), alias, current)
    if previous is None:
        raise UsageError(
            f"{name}@{alias} has pointed at version {current} from the start; there is no "
            "earlier version to roll back to."
        )
    return _move(connection, model, name, "rollback", alias, current, previous, user, reason)


@operation("GET /models/{name}/events")
def history(
    connection: Connection, name: str, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[RegistryEvent]:
    """A model's audit log, oldest first, a page at a time."""
    found = repo.events(connection, require_model(connection, name), name, cursor, page_size)
    return page(found, page_size, lambda e: (e.sequence,))


@operation("PUT /models/{name}/versions/{version}/card")
def set_card(connection: Connection, name: str, version: Version, card: Card) -> None:
    """Record where a version's model card is stored."""
    model = _require_version(connection, name, version)
    repo.set_card(connection, model, version, asdict(card))


@operation("PUT /models/{name}/versions/{version}/reference")
def set_reference(
    connection: Connection, name: str, version: Version, reference: StoredReference
) -> None:
    """Record a version's monitoring reference (its bytes stored first), replacing any."""
    model = _require_version(connection, name, version)
    references_repo.set_reference(
        connection, model, version, reference.digest, reference.rows, time.time()
    )


@operation("GET /models/{name}/versions/{version}/reference")
def get_reference(connection: Connection, name: str, version: Version) -> StoredReference | None:
    """The record of a version's monitoring reference, or None."""
    found = references_repo.reference(
        connection, _require_version(connection, name, version), version
    )
    return StoredReference(*found) if found is not None else None


def require_model(connection: Connection, name: str) -> str:
    """The stored key of a registered model; an unknown name lists the known ones."""
    model = repo.model_id(connection, name) if "\x00" not in name else None  # PostgreSQL
    if model is None:
        known = ", ".join(repo.model_names(connection)) or "none yet"
        raise ModelNotFoundError(
            f"No model is registered as {name!r}. Registered models: {known}. Register one "
            "with 'loopml models register NAME --run RUN_ID'."
        )
    return model


def check_model_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(
            f"Model names are 1 to 255 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit; not {name!r}."
        )


def check_alias(alias: Any) -> None:
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias) or alias.isdigit():
        raise UsageError(
            f"Aliases are 1 to 64 letters, digits, '_' or '-', starting with a letter; not "
            f"{alias!r}."
        )


def _summary(connection: Connection, name: str) -> ModelSummary:
    model = require_model(connection, name)
    every = repo.versions(connection, model, name)
    latest = every[-1] if every else None
    return ModelSummary(
        name,
        len(every),
        latest.version if latest else None,
        repo.aliases(connection, model),
        latest.created_at if latest else None,
    )


def _require_version(connection: Connection, name: str, version: int) -> str:
    model = require_model(connection, name)
    if not 1 <= version < repo.next_version(connection, model):
        raise ModelNotFoundError(f"Model {name!r} has no version {version}.")
    return model


def _number(selector: str) -> int | None:
    """The version number a selector spells, or None (an alias)."""
    if selector.isascii() and selector.isdigit() and len(selector) <= 18:
        return int(selector)
    return None


def _move(
    connection: Connection,
    model: str,
    name: str,
    action: str,
    alias: str,
    old: int | None,
    new: int,
    user: str,
    reason: str | None,
) -> RegistryEvent:
    """Point the alias at ``new`` and append the move to the audit log."""
    now = time.time()
    repo.set_alias(connection, model, alias, new, now)
    event = {
        "action": action,
        "alias": alias,
        "from_version": old,
        "to_version": new,
        "actor": current_actor(user),
        "reason": reason,
        "at": now,
    }
    return RegistryEvent(name, repo.add_event(connection, model, event), **event)


def _previous(log: list[RegistryEvent], alias: str, current: int) -> int | None:
    """The version the alias had before the latest move (not itself a rollback) to current."""
    for event in reversed(log):
        if event.alias == alias and event.action != "rollback" and event.to_version == current:
            return event.from_version
    return None
