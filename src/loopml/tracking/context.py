"""The active run of the calling context, kept in a context variable (never a global).

Threads and asyncio tasks each see their own active run: a run started in one thread is not
the active run of another.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.tracking.run import Run

_active: ContextVar[tuple[Run, ...]] = ContextVar("loopml_active_runs", default=())


def active_run() -> Run | None:
    """The innermost run started in this context and not yet ended, or None."""
    for run in reversed(_active.get()):
        if run.status == "running":  # a run ended from another thread stays on this stack
            return run
    return None


def push(run: Run) -> None:
    """Make a run the active run of this context."""
    _active.set((*_active.get(), run))


def forget(run: Run) -> None:
    """Remove an ended run from this context's stack of active runs."""
    stack = _active.get()
    if run in stack:
        _active.set(tuple(item for item in stack if item is not run))
