"""Tokens: who may call a loopml server, and in which role.

A token reads ``lml_<id>_<secret>``. The store keeps its id, name, role and the sha256 of
its secret, never the secret itself, which is shown once, when the token is made.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loopml.errors import ConfigError, TokenNotFoundError, UsageError
from loopml.store.operations import ROLES, Role, current_actor, operation
from loopml.store.schema import tokens

PREFIX = "lml_"
_TOKEN = re.compile(r"lml_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}\Z")


@dataclass(frozen=True)
class TokenRecord:
    """A token as stored (without its secret)."""

    name: str
    role: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None

    def active(self, now: float) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class NewToken:
    """A token just made: its record and the token itself, shown this once."""

    record: TokenRecord
    token: str


@dataclass(frozen=True)
class Caller:
    """Who a request comes from."""

    name: str
    role: str
    anonymous: bool = False  # a workspace without tokens: local use only

    @property
    def actor(self) -> str | None:
        """Whom writes are recorded for: the token's name; without tokens, whom the client
        says it runs as (None here)."""
        return None if self.anonymous else self.name

    def may(self, role: str) -> bool:
        """Whether this caller's role includes that one (admin > editor > viewer)."""
        return ROLES.index(self.role) >= ROLES.index(role)


@operation("POST /tokens", role="admin")
def create_token(
    connection: Connection, name: str, role: Role, expires_at: float | None = None
) -> NewToken:
    """Make a token; the answer holds the token, which is never shown again."""
    if not _NAME.match(name):
        raise UsageError(
            f"{name!r} is not a token name: use 1 to 100 letters, digits and _ . @ -, "
            "starting with a letter or digit."
        )
    if role not in ROLES:
        raise UsageError(f"{role!r} is not a role: use one of {', '.join(ROLES)}.")
    now = time.time()
    if expires_at is not None and expires_at <= now:
        raise UsageError("A token cannot expire in the past: give a later expiry.")
    existing = connection.execute(sa.select(tokens.c.id).where(tokens.c.name == name)).first()
    if existing is not None:
        raise UsageError(
            f"A token named {name!r} exists already: revoke it first "
            f"(loopml server token revoke {name}) or choose another name."
        )
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = {
        "id": token_id,
        "name": name,
        "role": role,
        "secret_hash": _hash(secret),
        "created_at": now,
        "created_by": current_actor(_local_user()),
        "expires_at": expires_at,
        "revoked_at": None,
    }
    connection.execute(tokens.insert(), [row])
    return NewToken(_record(row), f"{PREFIX}{token_id}_{secret}")


@operation("GET /tokens", role="admin")
def list_tokens(connection: Connection) -> list[TokenRecord]:
    """Every token, revoked and expired ones included, by name."""
    rows = connection.execute(sa.select(tokens).order_by(tokens.c.name)).mappings()
    return [_record(row) for row in rows]


@operation("DELETE /tokens/{name}", role="admin")
def revoke_token(connection: Connection, name: str) -> TokenRecord:
    """Revoke a token by name: from now on it is refused."""
    row = connection.execute(sa.select(tokens).where(tokens.c.name == name)).mappings().first()
    if row is None:
        raise TokenNotFoundError(
            f"No token is named {name!r}. Run 'loopml server token list' to see them."
        )
    if row["revoked_at"] is None:
        at = time.time()
        connection.execute(tokens.update().where(tokens.c.name == name).values(revoked_at=at))
        row = {**row, "revoked_at": at}
    return _record(row)


def any_tokens(connection: Connection) -> bool:
    """Whether any token was ever made (then every request needs one)."""
    return connection.execute(sa.select(tokens.c.id).limit(1)).first() is not None


def verify(connection: Connection, token: str, now: float) -> Caller | None:
    """The caller a token belongs to, or None for a token that is malformed, unknown,
    revoked or expired (all alike, so an answer tells nothing of which)."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    row = connection.execute(sa.select(tokens).where(tokens.c.id == token_id)).mappings().first()
    if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        return None
    if not _record(row).active(now):
        return None
    return Caller(row["name"], row["role"])


def parse_expiry(text: str | None, now: float) -> float | None:
    """The expiry time of '90d', '12h', '30m' (or None for 'never' / no text)."""
    if text is None or text.strip().lower() in ("", "never"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text.lower())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(
            f"{text!r} is not an expiry: use a number of days, hours or minutes "
            "such as 90d, 12h or 30m, or 'never'."
        )
    unit = {"d": 86400, "h": 3600, "m": 60}[match.group(2)]
    return now + int(match.group(1)) * unit


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: dict) -> TokenRecord:
    return TokenRecord(
        row["name"],
        row["role"],
        row["created_at"],
        row["created_by"],
        row["expires_at"],
        row["revoked_at"],
    )


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
