"""Identifiers: random, URL-safe, fixed-length hex."""

from __future__ import annotations

import secrets

ID_LENGTH = 16


def new_id() -> str:
    """A new random 64-bit identifier as 16 hex characters."""
    return secrets.token_hex(ID_LENGTH // 2)


def looks_like_id_prefix(text: str) -> bool:
    """True if text could be an id or the start of one."""
    return 0 < len(text) <= ID_LENGTH and all(c in "0123456789abcdef" for c in text)
