"""The schedule's lease on each metadata store (SQLite, PostgreSQL, a server): one holder at
a time, renewed in its term, taken over once it lapses or is released. The schedule at work
(monitoring every period, schedulers in many processes) is tested in
tests/serving/test_monitor_schedule.py."""

from __future__ import annotations

import time

import pytest

from loopml.errors import ModelNotFoundError
from loopml.loop.schedule import Lease, Scheduler


def test_one_holder_at_a_time_and_the_next_takes_over(any_workspace) -> None:
    first, second = (Lease("loop:churn", any_workspace, seconds=0.5) for _ in range(2))
    assert first.acquire() and not second.acquire()
    assert first.acquire() and first.term == 1  # renewed, in the same term
    time.sleep(0.6)
    assert second.acquire() and second.term == 2  # lapsed: taken over, in the next term
    assert not first.acquire() and first.term is None
    second.release()
    assert first.acquire() and first.term == 3  # released: no wait


def test_a_scheduler_of_an_unknown_endpoint_fails_at_once(any_workspace) -> None:
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nobody'"):
        Scheduler("nobody", every=60)
