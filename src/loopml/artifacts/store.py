"""The artifact store: immutable bytes behind fsspec, addressed by their sha256.

Objects live at ``<root>/objects/<d[:2]>/<d[2:4]>/<d>``. Writes go to ``<root>/tmp/`` first and
are renamed into place once complete, so a reader never sees a partial object. Every read
hashes the bytes again and refuses ones that no longer match.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    UnknownSchemeError,
    missing_dependency,
)
from loopml.hashing import CHUNK_SIZE, sha256_bytes
from loopml.ids import new_id

KNOWN_SCHEMES = {
    "file": "file:///path/to/artifacts (or a plain path)",
    "memory": "memory://name (this process only; for tests)",
    "s3": "s3://bucket/prefix (needs loopml[s3])",
}


class ArtifactStore:
    """Content-addressed bytes at an fsspec URL."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, self.root = _open_filesystem(url, storage_options or {})
        self.root = self.root.rstrip("/")

    def path_of(self, digest: str) -> str:
        """Where the object with this hash lives in the store."""
        return f"{self.root}/objects/{digest[:2]}/{digest[2:4]}/{digest}"

    def exists(self, digest: str) -> bool:
        """True if an object with this hash is stored."""
        return self.fs.exists(self.path_of(digest))

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256. Storing the same bytes again is a no-op."""
        digest = sha256_bytes(data)
        if not self.exists(digest):
            self._commit(digest, lambda stream: stream.write(data))
        return digest

    def put_file(self, path: str | Path) -> str:
        """Store a local file's content, hashing it as it is copied; returns the sha256."""
        temporary = self._temporary_path()
        hasher = hashlib.sha256()
        with open(path, "rb") as source, self.fs.open(temporary, "wb") as target:
            while chunk := source.read(CHUNK_SIZE):
                hasher.update(chunk)
                target.write(chunk)
        digest = hasher.hexdigest()
        self._move_into_place(temporary, digest)
        return digest

    def get_bytes(self, digest: str) -> bytes:
        """The bytes stored under a hash, verified against it."""
        path = self._existing(digest)
        with self.fs.open(path, "rb") as stream:
            data = stream.read()
        actual = sha256_bytes(data)
        if actual != digest:
            raise _corrupted(digest, path, actual)
        return data

    def get_file(self, digest: str, destination: str | Path) -> Path:
        """Copy an object to a local file, verified before it appears at destination."""
        path = self._existing(digest)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=".partial-")
        hasher = hashlib.sha256()
        try:
            with self.fs.open(path, "rb") as source, os.fdopen(handle, "wb") as target:
                while chunk := source.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    target.write(chunk)
            if hasher.hexdigest() != digest:
                raise _corrupted(digest, path, hasher.hexdigest())
            os.replace(partial, destination)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return destination

    def verify(self, digest: str) -> None:
        """Raise if the object is missing or its bytes no longer match its hash."""
        path = self._existing(digest)
        hasher = hashlib.sha256()
        with self.fs.open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        if hasher.hexdigest() != digest:
            raise _corrupted(digest, path, hasher.hexdigest())

    def _existing(self, digest: str) -> str:
        path = self.path_of(digest)
        if not self.fs.exists(path):
            raise ArtifactNotFoundError(
                f"The artifact store {self.url} has no object sha256:{digest}: it was deleted "
                "or the workspace points at another store (check LOOPML_ARTIFACTS_URL)."
            )
        return path

    def _temporary_path(self) -> str:
        folder = f"{self.root}/tmp"
        self.fs.makedirs(folder, exist_ok=True)
        return f"{folder}/{new_id()}"

    def _commit(self, digest: str, write: Any) -> None:
        temporary = self._temporary_path()
        with self.fs.open(temporary, "wb") as stream:
            write(stream)
        self._move_into_place(temporary, digest)

    def _move_into_place(self, temporary: str, digest: str) -> None:
        final = self.path_of(digest)
        if self.fs.exists(final):
            self.fs.rm(temporary)
            return
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(temporary, final)


def _corrupted(digest: str, path: str, actual: str) -> ArtifactCorruptedError:
    return ArtifactCorruptedError(
        f"Artifact sha256:{digest} at {path} is corrupted: its bytes now hash to "
        f"sha256:{actual}. It was changed or truncated after it was stored; it will not be "
        "loaded. Log it again from its source, or restore the store from a backup."
    )


def _open_filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme not in KNOWN_SCHEMES:
        known = "; ".join(KNOWN_SCHEMES.values())
        raise UnknownSchemeError(
            f"Cannot open artifact store '{url}': unknown scheme '{scheme}://'. Known schemes: "
            f"{known}. Set LOOPML_ARTIFACTS_URL or artifacts_url in loopml.toml."
        )
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError:
        raise missing_dependency("s3fs", "s3", f"The artifact store {url}") from None
    if scheme == "file":
        Path(root).mkdir(parents=True, exist_ok=True)
    return fs, root
