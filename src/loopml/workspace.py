"""The Workspace: where state lives — a metadata store and an artifact store, from settings.

``current_workspace()`` gives the workspace of the calling context: the one set with
``use_workspace`` (a context variable, so threads and async tasks do not share it), else the
one the settings point to, opened once per process.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loopml.artifacts.store import ArtifactStore
from loopml.settings import Settings, load_settings
from loopml.store import runs as runs_repo
from loopml.store.metadata import MetadataStore
from loopml.store.remote import RemoteMetadataStore

if TYPE_CHECKING:
    from loopml.events.store import EventStore

T = TypeVar("T")

_current: ContextVar[Workspace | None] = ContextVar("loopml_workspace", default=None)
EVENTS = "events.store"
_opened: dict[str, Workspace] = {}
_opened_lock = threading.Lock()
_every_workspace: weakref.WeakSet[Workspace] = weakref.WeakSet()
_fork_hook_installed = False


def _artifact_store(settings: Settings, metadata: Any) -> Any:
    """The workspace's artifacts: through its loopml server when it has one and no
    artifacts_url of its own is set, else at artifacts_url."""
    if settings.server_url and settings.source_of("artifacts_url") == "default":
        from loopml.artifacts.remote import RemoteArtifactStore

        return RemoteArtifactStore(metadata)
    options = {"endpoint_url": settings.s3_endpoint_url} if settings.s3_endpoint_url else {}
    return ArtifactStore(
        settings.artifacts_url,
        storage_options=options if settings.artifacts_url.startswith("s3://") else None,
    )


class Workspace:
    """A metadata store plus an artifact store, with the settings that chose them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home: Path = settings.home
        self.metadata = _metadata_store(settings)
        self.artifacts = _artifact_store(settings, self.metadata)
        self._services: dict[str, Any] = {}
        self._services_lock = threading.Lock()
        _track(self)

    def __repr__(self) -> str:
        return f"Workspace(metadata={self.metadata.url!r}, artifacts={self.artifacts.url!r})"

    def __reduce__(self) -> tuple[Any, tuple[Settings]]:
        """Pickled as its settings: a worker process reopens the same stores (one per
        process). A memory:// artifact store does not travel: each process has its own."""
        return reopen_workspace, (self.settings,)

    @property
    def events(self) -> EventStore:
        """The prediction and feedback logs (opened on first use)."""
        return self.service(EVENTS, _open_events)

    def prepare(self) -> Workspace:
        """Create or upgrade the schema and mark runs whose process died as killed."""
        if isinstance(self.metadata, RemoteMetadataStore):
            return self  # the server keeps its schema and its runs
        self.metadata.ensure_schema()
        with self.metadata.write() as connection:
            runs_repo.mark_dead_runs_killed(
                connection,
                host=socket.gethostname(),
                now=time.time(),
                stale_after=self.settings.stale_run_timeout,
                is_alive=process_is_alive,
            )
        return self

    def service(self, key: str, factory: Callable[[Workspace], T]) -> T:
        """A per-workspace helper object (for example a background flusher), made once.

        Helpers may define close(), called by Workspace.close(), and after_fork(), called in
        the child process after a fork.
        """
        with self._services_lock:
            if key not in self._services:
                self._services[key] = factory(self)
            return self._services[key]

    def close(self) -> None:
        """Stop helpers and release database connections."""
        with self._services_lock:
            services, self._services = list(self._services.values()), {}
        for helper in services:
            close = getattr(helper, "close", None)
            if callable(close):
                close()
        self.metadata.dispose()

    def _after_fork(self) -> None:
        self._services_lock = threading.Lock()
        self.metadata.dispose(close=False)
        for helper in self._services.values():
            after_fork = getattr(helper, "after_fork", None)
            if callable(after_fork):
                after_fork()


def _metadata_store(settings: Settings) -> MetadataStore | RemoteMetadataStore:
    if settings.server_url:
        return RemoteMetadataStore(
            settings.server_url, settings.token or None, retry_seconds=settings.server_retry_seconds
        )
    return MetadataStore(settings.metadata_url, busy_timeout=settings.sqlite_busy_timeout)


def open_workspace(path: str | Path | None = None, **overrides: Any) -> Workspace:
    """Open the workspace configured for a folder (default: the working directory)."""
    return Workspace(load_settings(cwd=path, **overrides)).prepare()


def context_workspace() -> Workspace | None:
    """The workspace set by use_workspace in this context, if any."""
    return _current.get()


def current_workspace() -> Workspace:
    """The workspace of this context: set by use_workspace, else the configured one."""
    workspace = _current.get()
    if workspace is not None:
        return workspace
    return reopen_workspace(load_settings())


def reopen_workspace(settings: Settings) -> Workspace:
    """The workspace of these settings, opened once per process."""
    key = settings.model_dump_json()
    with _opened_lock:
        workspace = _opened.get(key)
        if workspace is None:
            workspace = _opened[key] = Workspace(settings).prepare()
    return workspace


def close_opened_workspaces() -> None:
    """Close every workspace current_workspace() opened in this process (they reopen on use)."""
    with _opened_lock:
        opened = list(_opened.values())
        _opened.clear()
    for workspace in opened:
        workspace.close()


@contextmanager
def use_workspace(workspace: Workspace | str | Path) -> Iterator[Workspace]:
    """Make a workspace (or the one configured for a folder) current inside a with block."""
    if not isinstance(workspace, Workspace):
        workspace = open_workspace(workspace)
    token = _current.set(workspace)
    try:
        yield workspace
    finally:
        _current.reset(token)


def _open_events(workspace: Workspace) -> EventStore:
    from loopml.events.store import EventStore

    settings = workspace.settings
    url = settings.events_url or str(Path(workspace.home) / "events")
    remote = url.startswith("s3://")
    options = {"endpoint_url": settings.s3_endpoint_url} if settings.s3_endpoint_url else {}
    return EventStore(
        url,
        spool=Path(workspace.home) / "events" / "spool",
        host=settings.host_id or socket.gethostname(),
        segment_bytes=settings.events_segment_bytes,
        segment_seconds=settings.events_segment_seconds,
        durable=settings.events_durable,
        storage_options=options if remote else None,
    )


def process_is_alive(pid: int) -> bool:
    """True if a process with this id exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _track(workspace: Workspace) -> None:
    global _fork_hook_installed
    _every_workspace.add(workspace)
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_installed = True


def _after_fork_in_child() -> None:
    global _opened_lock
    _opened_lock = threading.Lock()
    for workspace in list(_every_workspace):
        workspace._after_fork()
