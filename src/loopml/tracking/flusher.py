"""Background writing of buffered metric values, heartbeats, and run ends at process exit.

One daemon thread per workspace wakes every ``metric_flush_interval`` seconds, writes every
live run's buffered metric values in one transaction per run, and sends heartbeats. At normal
interpreter exit the remaining values are written and runs still open are ended: as failed if
an uncaught exception is ending the process, else as finished. A process killed by a signal
loses at most the values logged since the last flush, about one interval.

In a forked child the flusher starts afresh: runs inherited from the parent stay the parent's
(the child may read them and nest new runs under them, not log to them or end them).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING

from loopml.tracking.operations import heartbeat

if TYPE_CHECKING:
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace

log = logging.getLogger("loopml.tracking")


class Flusher:
    """Flushes the metric buffers of a workspace's live runs in the background."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.interval = workspace.settings.metric_flush_interval
        self.heartbeat_interval = workspace.settings.heartbeat_interval
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = time.monotonic()
        self._pid = os.getpid()
        self._uncaught: BaseException | None = None
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self.at_exit)

    def _excepthook(self, kind, error, trace) -> None:
        self._uncaught = error
        self._previous_hook(kind, error, trace)

    def add(self, run: Run) -> None:
        """Start flushing a run's buffer (and start the thread on first use)."""
        with self._lock:
            self._runs[run.id] = run
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="loopml-flusher", daemon=True
                )
                self._thread.start()

    def remove(self, run: Run) -> None:
        """Stop flushing a run (it has ended and flushed itself)."""
        with self._lock:
            self._runs.pop(run.id, None)

    def live_runs(self) -> list[Run]:
        """Runs started through this workspace in this process that have not ended."""
        with self._lock:
            return list(self._runs.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush_all()
            if time.monotonic() - self._last_heartbeat >= self.heartbeat_interval:
                self._heartbeat()

    def flush_all(self) -> None:
        """Write every live run's buffered values; a failure is logged and retried later."""
        for run in self.live_runs():
            try:
                run.flush()
            except Exception as error:
                log.warning("loopml could not flush metrics of run %s yet: %s", run.id, error)

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        ids = [run.id for run in self.live_runs()]
        if not ids:
            return
        try:
            heartbeat(self.workspace.metadata, ids)
        except Exception as error:
            log.warning("loopml could not record a heartbeat: %s", error)

    def at_exit(self) -> None:
        """End runs left open at interpreter exit, failed if an exception is ending it."""
        self._stop.set()
        if os.getpid() != self._pid:
            return
        failure = self._uncaught
        for run in self.live_runs():
            try:
                if isinstance(failure, KeyboardInterrupt):
                    run.end("killed", error="Interrupted (KeyboardInterrupt).")
                elif failure is not None and not isinstance(failure, SystemExit):
                    error = "".join(traceback.format_exception(failure)).strip()
                    run.end("failed", error=error)
                else:
                    run.end("finished")
            except Exception as error:
                log.error("loopml could not end run %s at exit: %s", run.id, error)

    def after_fork(self) -> None:
        """In a forked child: no thread, no runs of its own yet, the parent's runs read-only."""
        for run in self._runs.values():
            run.after_fork()
        self._runs = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        self._uncaught = None

    def close(self) -> None:
        """Flush everything and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        self.flush_all()
        atexit.unregister(self.at_exit)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook
