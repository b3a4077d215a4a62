"""Files in and out of a server's artifact store: uploads streamed to a scratch file under a
size limit while they are hashed, downloads verified against their hash before a byte is
sent. Both the loopml routes and MLflow's artifact proxy use them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from loopml.artifacts.store import ArtifactStore


class TooLarge(Exception):
    """An upload beyond the server's limit (server_max_upload_mb)."""

    def __init__(self, limit: int) -> None:
        self.message = (
            f"The upload is larger than this server takes ({limit // (1024 * 1024)} MB; "
            "server_max_upload_mb)."
        )
        super().__init__(self.message)


@dataclass(frozen=True)
class Upload:
    """A request's body, on local disk until the request ends."""

    path: str
    size: int
    digest: str


@contextlib.asynccontextmanager
async def received(request: Request, limit: int) -> AsyncIterator[Upload]:
    """The request's body in a scratch file, hashed as it arrives; TooLarge past limit bytes
    (refused before reading when the request says its length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    handle, local = tempfile.mkstemp(prefix="loopml-upload-")
    try:
        hasher, size = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as target:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                hasher.update(chunk)
                target.write(chunk)
        yield Upload(local, size, hasher.hexdigest())
    finally:
        os.unlink(local)


def verified_file(store: ArtifactStore, digest: str, filename: str | None = None) -> FileResponse:
    """An answer with the stored content, checked against its hash first (the artifact
    store's errors pass through); its scratch copy goes when the answer is sent."""
    folder = tempfile.mkdtemp(prefix="loopml-download-")
    try:
        local = store.get_file(digest, os.path.join(folder, "content"))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        local,
        media_type=None if filename else "application/octet-stream",
        filename=filename,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
