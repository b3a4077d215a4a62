"""Identifiers: random, URL-safe, fixed-length hex."""

from __future__ import annotations

import secrets
import time

ID_LENGTH = 16


def new_id() -> str:
    """A new random 64-bit identifier as 16 hex characters."""
    return secrets.token_hex(ID_LENGTH // 2)


def looks_like_id_prefix(text: str) -> bool:
    """True if text could be an id or the start of one."""
    return 0 < len(text) <= ID_LENGTH and all(c in "0123456789abcdef" for c in text)


EVENT_ID_LENGTH = 24
_TIME_DIGITS = 12  # milliseconds since the epoch, in hex: enough until the year 10889


def new_event_id(moment: float | None = None) -> str:
    """A new id for a logged event: 12 hex digits of its time in milliseconds, then 48
    random bits. The time lets the log find an event by id in the hour it was written."""
    milliseconds = int((time.time() if moment is None else moment) * 1000)
    return f"{milliseconds:0{_TIME_DIGITS}x}{secrets.token_hex(6)}"


def moment_of_event_id(text: str) -> float | None:
    """The time an event id was made at (seconds since the epoch), or None for an id that
    does not carry one."""
    head = text[:_TIME_DIGITS]
    if len(text) < EVENT_ID_LENGTH or not all(c in "0123456789abcdef" for c in head):
        return None
    return int(head, 16) / 1000


def new_event_ids(count: int, moment: float | None = None) -> list[str]:
    """``count`` new event ids made at one moment (see ``new_event_id``)."""
    milliseconds = int((time.time() if moment is None else moment) * 1000)
    head, noise = f"{milliseconds:0{_TIME_DIGITS}x}", secrets.token_hex(6 * count)
    return [head + noise[i : i + 12] for i in range(0, 12 * count, 12)]
