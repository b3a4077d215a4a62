"""The artifact store of a workspace served by a loopml server: content by its sha256, over
HTTP, streamed both ways and checked against its hash at both ends.

Used when ``server_url`` is set and ``artifacts_url`` is not: a client then needs no
credentials for the bucket, only its token. The server refuses an upload whose bytes do not
hash to the name it is sent under, and this client refuses a download that does not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopml.errors import ArtifactCorruptedError, ArtifactNotFoundError
from loopml.hashing import CHUNK_SIZE, sha256_bytes, sha256_file
from loopml.store.remote import API, RemoteMetadataStore


class RemoteArtifactStore:
    """Content-addressed bytes kept by a loopml server (see the module docstring)."""

    def __init__(self, server: RemoteMetadataStore) -> None:
        self.server = server
        self.url = f"{server.url}{API}/artifacts"

    def __repr__(self) -> str:
        return f"RemoteArtifactStore({self.url!r})"

    def exists(self, digest: str) -> bool:
        """True if the server keeps an object with this hash."""
        status = self.server._send(
            "HEAD",
            self._of(digest),
            self._headers,
            "artifacts.exists",
            receive=lambda response: response.status_code,
            expected=(200, 404),
        )
        return status == 200

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256. Storing the same bytes again is a no-op."""
        digest = sha256_bytes(data)
        if not self.exists(digest):
            self._upload(digest, lambda: iter((data,)))
        return digest

    def put_file(self, path: str | Path) -> str:
        """Store a local file's content, streamed; returns its sha256."""
        digest = sha256_file(path)
        if not self.exists(digest):
            self._upload(digest, lambda: _chunks(path))
        return digest

    def get_bytes(self, digest: str) -> bytes:
        """The bytes stored under a hash, verified against it."""
        data = self.server._send("GET", self._of(digest), self._headers, "artifacts.get")
        actual = sha256_bytes(data)
        if actual != digest:
            raise _corrupted(digest, actual)
        return data

    def get_file(self, digest: str, destination: str | Path) -> Path:
        """Copy an object to a local file, verified before it appears at destination."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=".partial-")
        os.close(handle)

        def receive(response: Any) -> str:
            hasher = hashlib.sha256()
            with open(partial, "wb") as target:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    hasher.update(chunk)
                    target.write(chunk)
            return hasher.hexdigest()

        try:
            actual = self.server._send(
                "GET", self._of(digest), self._headers, "artifacts.get", receive=receive
            )
            if actual != digest:
                raise _corrupted(digest, actual)
            os.replace(partial, destination)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return destination

    def verify(self, digest: str) -> None:
        """Raise if the object is missing or its bytes no longer match its hash."""
        self.get_bytes(digest)

    def _upload(self, digest: str, body: Any) -> None:
        def request() -> dict[str, Any]:
            headers = {**self.server._headers, "Content-Type": "application/octet-stream"}
            return {"headers": headers, "content": body()}

        self.server._send("PUT", self._of(digest), request, "artifacts.put")

    def _headers(self) -> dict[str, Any]:
        return {"headers": dict(self.server._headers)}

    def _of(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArtifactNotFoundError(f"{digest!r} is not the sha256 of stored content.")
        return f"{self.url}/{digest}"


def _chunks(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            yield chunk


def _corrupted(digest: str, actual: str) -> ArtifactCorruptedError:
    return ArtifactCorruptedError(
        f"The loopml server sent bytes for sha256:{digest} that hash to sha256:{actual}; they "
        "are not used. Retry; if it persists, the server's store is damaged."
    )
