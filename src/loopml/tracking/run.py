"""A Run: one tracked execution, recording params, metrics, tags, artifacts and lineage.

Params, tags and artifacts are written when logged. Metric values go to an in-memory buffer
that the workspace's flusher writes at least every ``metric_flush_interval`` seconds, when the
buffer holds ``metric_buffer_limit`` values, when the run ends and at normal process exit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from loopml.errors import (
    InvalidMetricError,
    InvalidValueError,
    RunStateError,
    StoreUnavailableError,
)
from loopml.store.metrics import MetricRow
from loopml.store.pages import every
from loopml.store.records import ENDED_STATUSES, ArtifactRecord, RunRecord
from loopml.store.steps import CacheEntry
from loopml.tracking import artifacts as content
from loopml.tracking import operations as ops
from loopml.tracking.context import forget
from loopml.tracking.flusher import Flusher
from loopml.tracking.validation import (
    STEPS,
    as_step,
    check_key,
    check_keys,
    check_tag_values,
    metric_timestamp,
    metric_value,
)
from loopml.workspace import Workspace

FLUSHER = "tracking.flusher"
# While the store is failing, a run keeps this many times metric_buffer_limit values before
# refusing new ones.
BACKLOG_FACTOR = 10

log = logging.getLogger("loopml.tracking")


def flusher_of(workspace: Workspace) -> Flusher:
    """The workspace's background flusher, created on first use."""
    return workspace.service(FLUSHER, Flusher)


class Run:
    """A live run. Use as a context manager, or call end() yourself."""

    def __init__(
        self,
        workspace: Workspace,
        run_id: str,
        *,
        experiment: str,
        name: str | None = None,
        parent_id: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.workspace = workspace
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.parent_id = parent_id
        self.seed = seed
        self.status = "running"
        self._pending: deque[MetricRow] = deque()
        self._limit = workspace.settings.metric_buffer_limit
        self._steps: dict[str, int] = {}
        self._flush_lock = threading.Lock()
        self._ended = False
        self._owner_pid = os.getpid()

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment!r}, status={self.status!r})"

    # --- params and tags ---------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record one param. Logging the same value again is fine; a different one is refused."""
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Record several params in one transaction."""
        self._check_open("log params")
        check_keys(values, "param")
        ops.log_params(self.workspace.metadata, self.id, dict(values))

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag (a mutable string label)."""
        self.set_tags({key: value})

    def set_tags(self, values: Mapping[str, Any]) -> None:
        """Set several tags; later values replace earlier ones. Allowed after the run ended."""
        self._check_owner("set tags")
        check_keys(values, "tag")
        check_tag_values(values)
        ops.set_tags(self.workspace.metadata, self.id, dict(values))

    # --- metrics -----------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, *, timestamp: float | None = None
    ) -> None:
        """Buffer one metric value; step defaults to the key's previous step plus one."""
        if self._ended:
            self._check_open("log metrics")
        number = metric_value(key, value, self.id)
        if key.__class__ is not str or key not in self._steps:
            check_key(key, "metric", InvalidMetricError)
        if step is None:
            step = self._steps.get(key, 0)
        elif step.__class__ is not int or not STEPS[0] <= step <= STEPS[1]:
            step = as_step(key, step)
        moment = time.time() if timestamp is None else metric_timestamp(key, timestamp)
        if len(self._pending) >= self._limit:
            self._make_room()
        self._steps[key] = step + 1
        self._pending.append((key, number, step, moment))
        if self._ended:  # end() ran in another thread after the check above
            self.flush()

    def _make_room(self) -> None:
        """Flush a full buffer; while the store fails, keep a bounded backlog, then refuse."""
        try:
            self.flush()
        except StoreUnavailableError as error:
            if len(self._pending) >= BACKLOG_FACTOR * self._limit:
                raise StoreUnavailableError(
                    f"Run {self.id} holds {len(self._pending)} metric values that cannot be "
                    f"written ({error}); this value was not recorded. Retry when the store "
                    "answers."
                ) from None
            log.warning(
                "loopml keeps %d metric values of run %s in memory: %s",
                len(self._pending),
                self.id,
                error,
            )

    def log_metrics(
        self,
        values: Mapping[str, float],
        step: int | None = None,
        *,
        timestamp: float | None = None,
    ) -> None:
        """Buffer several metric values at one step and time."""
        moment = time.time() if timestamp is None else timestamp
        for key, value in values.items():
            self.log_metric(key, value, step, timestamp=moment)

    def flush(self) -> None:
        """Write buffered metric values now. On failure they stay buffered and the error rises."""
        with self._flush_lock:
            count = len(self._pending)
            if not count:
                return
            batch = [self._pending.popleft() for _ in range(count)]
            try:
                ops.log_metrics(self.workspace.metadata, self.id, batch)
            except BaseException:
                self._pending.extendleft(reversed(batch))
                raise

    # --- artifacts and lineage ---------------------------------------------------------

    def log_artifact(self, source: Any, name: str | None = None) -> ArtifactRecord:
        """Store a file, a folder, bytes or a picklable object as an output of this run."""
        self._check_open("log artifacts")
        name = _artifact_name(source, name)
        stored = content.store_content(self.workspace.artifacts, source)
        return self._link("output", name, stored)

    def log_input(self, source: Any, name: str | None = None) -> ArtifactRecord:
        """Record that this run read something: an artifact of a run, or a path (hashed)."""
        self._check_open("log inputs")
        if isinstance(source, ArtifactRecord):
            origin = f"run {source.run_id}: {source.name}"
            found = content.Content(source.digest, source.kind, source.size, origin)
            return self._link("input", name or source.name, found)
        name = _artifact_name(source, name)
        return self._link("input", name, content.hash_content(source))

    def link_input(
        self, name: str, digest: str, kind: str, size: int, source: str | None = None
    ) -> ArtifactRecord:
        """Record that this run read stored content known by its hash (a snapshot, say)."""
        self._check_open("log inputs")
        return self._link("input", name, content.Content(digest, kind, size, source))

    def link_output(
        self, name: str, digest: str, kind: str, size: int, source: str | None = None
    ) -> ArtifactRecord:
        """Record that this run produced stored content known by its hash."""
        self._check_open("log outputs")
        return self._link("output", name, content.Content(digest, kind, size, source))

    def _link(self, direction: str, name: str, found: content.Content) -> ArtifactRecord:
        return ops.link_artifact(self.workspace.metadata, self.id, _as_link(direction, name, found))

    def artifacts(self) -> list[ArtifactRecord]:
        """Everything this run wrote and read."""
        return list(every(ops.list_artifacts, self.workspace.metadata, self.id))

    # --- life cycle --------------------------------------------------------------------

    def info(self) -> RunRecord:
        """The run as stored now (buffered metrics are flushed first)."""
        self.flush()
        return ops.get_run(self.workspace.metadata, self.id)

    def end(self, status: str = "finished", *, error: str | None = None) -> None:
        """Flush and record the end; ending twice is a no-op.

        If buffered values cannot be written, the error rises and the run stays open (its
        values buffered), so end() can be called again.
        """
        if status not in ENDED_STATUSES:
            raise RunStateError(
                f"Cannot end run {self.id} as {status!r}: use one of {', '.join(ENDED_STATUSES)}."
            )
        self._check_owner("end the run")
        if self._ended:
            return
        self.flush()
        self._ended = True
        flusher_of(self.workspace).remove(self)
        try:
            self.flush()  # values logged by other threads while the first flush ran
        finally:
            ops.end_run(self.workspace.metadata, self.id, status, error)
            self.status = status
            forget(self)

    def finish(
        self,
        status: str = "finished",
        *,
        tags: Mapping[str, Any] | None = None,
        inputs: Sequence[tuple[str, content.Content]] = (),
        outputs: Sequence[tuple[str, content.Content]] = (),
        error: str | None = None,
        cache: CacheEntry | None = None,
    ) -> None:
        """End the run and record its tags, lineage links and buffered metric values with
        the end, in one transaction, with the step-cache entry it produced. Used where many
        short runs are recorded, such as pipeline steps."""
        if status not in ENDED_STATUSES:
            raise RunStateError(f"Cannot end run {self.id} as {status!r}.")
        self._check_open("finish the run")
        check_keys(tags or {}, "tag")
        check_tag_values(tags or {})
        self._ended = True
        flusher_of(self.workspace).remove(self)
        with self._flush_lock:
            batch = [self._pending.popleft() for _ in range(len(self._pending))]
        links = [_as_link("input", n, c) for n, c in inputs]
        links += [_as_link("output", n, c) for n, c in outputs]
        try:
            ops.finish_run(
                self.workspace.metadata,
                self.id,
                status,
                dict(tags or {}),
                links,
                batch,
                error,
                cache,
            )
        except BaseException:
            self._pending.extendleft(reversed(batch))
            self._ended = False
            flusher_of(self.workspace).add(self)
            raise
        self.status = status
        forget(self)

    def after_fork(self) -> None:
        """In a forked child: this process may read the run but not log to it."""
        self._pending = deque()
        self._flush_lock = threading.Lock()
        self._ended = True

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is None:
            self.end("finished")
        elif isinstance(error, KeyboardInterrupt):
            self.end("killed", error="Interrupted (KeyboardInterrupt).")
        elif isinstance(error, SystemExit) and error.code in (0, None):
            self.end("finished")
        else:
            text = "".join(traceback.format_exception(kind, error, trace)).strip()
            self.end("failed", error=text)

    def _check_open(self, action: str) -> None:
        self._check_owner(action)
        if self._ended:
            raise RunStateError(
                f"Cannot {action}: run {self.id} has ended ({self.status}). Start a new run."
            )

    def _check_owner(self, action: str) -> None:
        if self._owner_pid != os.getpid():
            raise RunStateError(
                f"Cannot {action}: run {self.id} belongs to process {self._owner_pid}, and this "
                "is a forked child. Start a run here instead; inside the parent's run it is "
                "nested under it: with loopml.start_run() as child: ..."
            )


def _artifact_name(source: Any, name: str | None) -> str:
    name = name or content.default_name(source)
    if not name:
        raise InvalidValueError(
            f"An artifact made from a {type(source).__name__} needs a name: "
            "run.log_artifact(value, name='model')."
        )
    return normal_name(name)


def normal_name(name: str) -> str:
    """An artifact's name in its one spelling ('a/b', never 'a//b', './a/b' or 'a\\b');
    names that leave their root ('../x', '/x'), hold control characters or are longer than
    512 characters are refused."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    normal = "/".join(parts)
    if (
        len(name) > 512
        or name != name.strip()
        or not parts
        or Path(name).is_absolute()
        or name.startswith(("/", "\\"))
        or ".." in parts
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise InvalidValueError(
            f"Artifact name {name!r} must be a relative name of at most 512 characters, with "
            "no '..' part and no control characters: a name inside the run, such as "
            "'model.pkl' or 'plots/roc.png'."
        )
    return normal


def _as_link(direction: str, name: str, found: content.Content) -> ops.Link:
    return ops.Link(direction, name, found.digest, found.kind, found.size, found.source)
