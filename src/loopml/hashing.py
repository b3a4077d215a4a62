"""Content hashing: sha256 of bytes, files, folders and JSON values, as lowercase hex."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_SIZE = 1 << 20


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex sha256 of a bytes-like object."""
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Hex sha256 of everything left in a binary stream, read in chunks."""
    return hashlib.file_digest(stream, "sha256").hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's content."""
    with open(path, "rb") as stream:
        return sha256_stream(stream)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_json(value: Any) -> str:
    """Hex sha256 of a JSON-serialisable value in canonical form."""
    return sha256_bytes(canonical_json(value))
