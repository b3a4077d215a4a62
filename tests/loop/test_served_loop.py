"""The loop's scheduler takes a step of the loop after each window it monitors."""

from __future__ import annotations

import threading
import time

from loopml.loop import decisions
from loopml.loop.schedule import Scheduler
from loopml.monitoring.timeseries import windows
from loopml.serving.deployments import raise_alert


def test_the_scheduler_takes_a_loop_step_after_each_window(endpoint, policy) -> None:
    raise_alert(endpoint, "rule:drift", "psi breached: a=3.1 (psi > 0.25 for 1 window)")
    scheduler, stop = Scheduler(endpoint, every=1, policy=policy(cooldown="1d")), threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not decisions(endpoint):
            assert time.monotonic() < deadline, "the scheduler took no step of the loop"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert windows(endpoint)  # the step came after a monitored window
    # the loop's clock is now, and the tiny data ends in 2013: the retrain is tried and fails,
    # is recorded, and the cooldown keeps the next windows from trying again
    found = decisions(endpoint)
    assert [d.action for d in found] == ["retrain_failed"]
    assert found[0].evidence["triggers"] == ["alert drift is firing"]
