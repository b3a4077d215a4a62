"""Tokens: who may call a loopml server, and in which role.

A token reads ``lml_<id>_<secret>``. The store keeps its id, name, role and the sha256 of
its secret, never the secret itself, which is shown once, when the token is made.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection

from loopml.errors import ConfigError, TokenNotFoundError, UsageError
from loopml.store.operations import ROLES, Role, current_actor, operation
from loopml.store.pages import PAGE, Cursor, Page, PageSize, Sort, ordered, page
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
def list_tokens(
    connection: Connection, page_size: PageSize = PAGE, cursor: Cursor | None = None
) -> Page[TokenRecord]:
    """Tokens, revoked and expired ones included, by name, a page at a time."""
    query = ordered(sa.select(tokens), [Sort(tokens.c.name)], cursor, page_size)
    found = [_record(row) for row in connection.execute(query).mappings()]
    return page(found, page_size, key=lambda token: (token.name,))


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


@operation("POST /tokens/check", role="viewer", write=False)
def check_token(
    connection: Connection, token: Annotated[str, Field(max_length=512)]
) -> Caller | None:
    """Whom a token belongs to, if it is valid now (model servers ask, for their callers)."""
    return verify(connection, token, time.time())


@operation("GET /tokens/any", role="viewer")
def has_tokens(connection: Connection) -> bool:
    """Whether the workspace has tokens (then its servers need one of every caller)."""
    return any_tokens(connection)


ANONYMOUS = Caller("anonymous", "admin", anonymous=True)


# How a 401 says what it takes (WWW-Authenticate).
CHALLENGE = 'Bearer, Basic realm="loopml"'


class Refused(Exception):
    """A request without a valid token (401) or without the role (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Trust:
    """An authenticating proxy in front of a server (oauth2-proxy, say), which names the user
    it signed in by a header. The header is believed only on requests from the proxy's
    addresses; the user then has the role that ``roles`` gives them, or ``roles["*"]``."""

    header: str
    roles: Mapping[str, str]
    proxies: tuple[str, ...] = ("127.0.0.1", "::1")

    @classmethod
    def from_settings(cls, settings: Any) -> Trust | None:
        """The trust a workspace's settings describe (None: no proxy is trusted)."""
        if not settings.server_trusted_header:
            return None
        return cls(
            settings.server_trusted_header,
            dict(settings.server_trusted_roles),
            tuple(settings.server_trusted_proxies),
        )

    def user(self, headers: Mapping[str, str], peer: str | None) -> str | None:
        """The user the proxy names, on a request that came from the proxy."""
        named = headers.get(self.header, "").strip()
        return named if named and self.from_proxy(peer) else None

    def from_proxy(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(p, strict=False) for p in self.proxies)

    def caller(self, user: str) -> Caller:
        role = self.roles.get(user, self.roles.get("*"))
        if role is None:
            raise Refused(
                403,
                f"The proxy signed in {user!r}, who has no role on this server: an admin gives "
                "one in the setting server_trusted_roles.",
            )
        return Caller(user, role)


@dataclass(frozen=True)
class Presented:
    """What a request shows of who sent it: its Authorization header (a bearer token, or
    Basic with a token as the password), and the user a trusted proxy names."""

    authorization: str = ""
    user: str | None = None


class Gate:
    """Whom a server's request comes from, checked against a role: by its token (bearer, or
    the password of HTTP Basic), else by the user a trusted proxy names (see Trust).

    A workspace without tokens and without a trusted proxy lets every caller in as admin;
    "no tokens" is believed for a second at a time. A valid token is believed for
    ``remember`` seconds (0: it is checked on every request, so a revoked token stops at
    once).
    """

    def __init__(self, store: Any, remember: float = 0.0, trust: Trust | None = None) -> None:
        self.store = store
        self.remember = remember
        self.trust = trust
        self._open_until = 0.0
        self._known: dict[str, tuple[Caller, float]] = {}

    def read(self, headers: Mapping[str, str], peer: str | None) -> Presented:
        """What a request with these headers, from this address, presents."""
        user = self.trust.user(headers, peer) if self.trust else None
        return Presented(headers.get("authorization", ""), user)

    def caller(self, presented: Presented, role: str) -> Caller:
        token = _token(presented.authorization)
        if token is not None:
            found = self._check(token)
            if found is None:
                raise Refused(
                    401,
                    "The token is not valid: it is unknown, revoked or expired. Ask an admin "
                    "for a new one.",
                )
        elif presented.user is not None and self.trust is not None:
            found = self.trust.caller(presented.user)
        elif self.trust is None and self._without_tokens():
            return ANONYMOUS
        else:
            raise Refused(
                401,
                "This server needs a token: send 'Authorization: Bearer <token>' (LOOPML_TOKEN "
                "for the SDK), or HTTP Basic with the token as the password"
                + (", or come through the signing-in proxy." if self.trust else "."),
            )
        if not found.may(role):
            raise Refused(403, f"{found.name!r} has the role {found.role}; this needs {role}.")
        return found

    def _check(self, token: str) -> Caller | None:
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and now < known[1]:
            return known[0]
        found = check_token(self.store, token)
        if found is not None and self.remember > 0:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[token] = (found, now + self.remember)
        return found

    def _without_tokens(self) -> bool:
        now = time.monotonic()
        if now < self._open_until:
            return True
        if has_tokens(self.store):
            return False
        self._open_until = now + 1.0
        return True


def _token(authorization: str) -> str | None:
    """The token of an Authorization header: 'Bearer <token>', or 'Basic' with base64 of
    'user:<token>' (any user name: the token says who calls)."""
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(401, "HTTP Basic credentials are base64 of 'user:token'.") from None
    return decoded.partition(":")[2] or None


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
