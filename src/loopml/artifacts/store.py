"""The artifact store: immutable bytes behind fsspec, addressed by their sha256.

Objects live at ``<root>/objects/<d[:2]>/<d[2:4]>/<d>``. Writes go to ``<root>/tmp/`` first and
are renamed into place once complete, so a reader never sees a partial object. Every read
hashes the bytes again and refuses ones that no longer match.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from loopml.errors import (
    ArtifactCorruptedError,
    ArtifactNotFoundError,
    StoreUnavailableError,
    UnknownSchemeError,
    missing_dependency,
)
from loopml.hashing import CHUNK_SIZE, sha256_bytes
from loopml.ids import new_id
from loopml.settings import hide_password

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
        with self._reporting("look up an object"):
            return self.fs.exists(self.path_of(digest))

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256. Storing the same bytes again is a no-op."""
        digest = sha256_bytes(data)

        def write(target: BinaryIO) -> str:
            target.write(data)
            return digest

        if not self.exists(digest):
            self._store(write)
        return digest

    def put_file(self, path: str | Path) -> str:
        """Store a local file's content, hashing it as it is copied; returns the sha256."""
        with open(path, "rb") as source:
            return self._store(lambda target: _copy(source, target))

    def get_bytes(self, digest: str) -> bytes:
        """The bytes stored under a hash, verified against it."""
        path = self._existing(digest)
        with self._reporting("read an object"), self.fs.open(path, "rb") as stream:
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
        try:
            with (
                self._reporting("read an object"),
                self.fs.open(path, "rb") as source,
                os.fdopen(handle, "wb") as target,
            ):
                actual = _copy(source, target)
            if actual != digest:
                raise _corrupted(digest, path, actual)
            os.replace(partial, destination)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return destination

    def verify(self, digest: str) -> None:
        """Raise if the object is missing or its bytes no longer match its hash."""
        path = self._existing(digest)
        with self._reporting("read an object"), self.fs.open(path, "rb") as stream:
            actual = _copy(stream, None)
        if actual != digest:
            raise _corrupted(digest, path, actual)

    def _existing(self, digest: str) -> str:
        if not self.exists(digest):
            raise ArtifactNotFoundError(
                f"The artifact store {hide_password(self.url)} has no object sha256:{digest}: it "
                "was deleted or the workspace points at another store (check "
                "LOOPML_ARTIFACTS_URL)."
            )
        return self.path_of(digest)

    def _store(self, write: Callable[[Any], str]) -> str:
        """Write to a temporary object, then move it to the name its hash gives."""
        with self._reporting("store an object"):
            folder = f"{self.root}/tmp"
            self.fs.makedirs(folder, exist_ok=True)
            temporary = f"{folder}/{new_id()}"
            try:
                with self.fs.open(temporary, "wb") as target:
                    digest = write(target)
                self._move_into_place(temporary, digest)
            except BaseException:
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)
                raise
        return digest

    def _move_into_place(self, temporary: str, digest: str) -> None:
        final = self.path_of(digest)
        if self.fs.exists(final):
            self.fs.rm(temporary)
            return
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(temporary, final)

    @contextmanager
    def _reporting(self, action: str) -> Iterator[None]:
        """Turn storage failures (unreachable, permission denied, disk full) into one error."""
        try:
            yield
        except OSError as error:
            raise StoreUnavailableError(
                f"The artifact store {hide_password(self.url)} failed to {action}: {error}. "
                "Check that it is reachable and writable (LOOPML_ARTIFACTS_URL), then retry."
            ) from None


def _copy(source: BinaryIO, target: BinaryIO | None) -> str:
    """Copy a stream in chunks (or just read it, without a target); returns its sha256."""
    hasher = hashlib.sha256()
    while chunk := source.read(CHUNK_SIZE):
        hasher.update(chunk)
        if target is not None:
            target.write(chunk)
    return hasher.hexdigest()


def _corrupted(digest: str, path: str, actual: str) -> ArtifactCorruptedError:
    return ArtifactCorruptedError(
        f"Artifact sha256:{digest} at {path} is corrupted: its bytes now hash to "
        f"sha256:{actual}. It was changed or truncated after it was stored; it will not be "
        "loaded. Log it again from its source, or restore the store from a backup."
    )


def _open_filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    return open_filesystem(url, options, store="artifact", schemes=KNOWN_SCHEMES)


def open_filesystem(
    url: str, options: dict[str, Any], *, store: str, schemes: dict[str, str]
) -> tuple[Any, str]:
    """The fsspec filesystem and root path of a store's URL (a plain path is a folder, made
    if missing); an unknown scheme is an error naming the known ones and the setting."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme not in schemes:
        known = "; ".join(schemes.values())
        raise UnknownSchemeError(
            f"Cannot open {store} store '{hide_password(url)}': unknown scheme '{scheme}://'. "
            f"Known schemes: {known}. Set LOOPML_{store.upper()}S_URL or {store}s_url in "
            "loopml.toml."
        )
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError:
        raise missing_dependency("s3fs", "s3", f"The {store} store {url}") from None
    if scheme == "file":
        Path(root).mkdir(parents=True, exist_ok=True)
    return fs, root
