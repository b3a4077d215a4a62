"""What survives the end of a process: normal exit, an uncaught exception, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import loopml

pytestmark = pytest.mark.slow


def run_script(folder: Path, body: str, **kwargs: object) -> subprocess.Popen[str]:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "LOOPML_HOME": str(folder / ".loopml")}
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_buffered_values_are_written_at_normal_exit(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import loopml
        run = loopml.start_run(experiment="exit", params={"lr": 0.1})
        for step in range(5000):
            run.log_metric("loss", 1.0 / (step + 1))
        print(run.id)
    """,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    record = loopml.get_run(out.strip())
    assert record.status == "finished"
    assert loopml.metric_summaries(record.id)[0].count == 5000


def test_an_uncaught_exception_marks_an_open_run_failed(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import loopml
        run = loopml.start_run(experiment="crash")
        run.log_metric("progress", 0.5)
        print(run.id, flush=True)
        raise RuntimeError("disk full")
    """,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "disk full" in err
    record = loopml.get_run(out.strip())
    assert record.status == "failed"
    assert "RuntimeError: disk full" in record.error
    assert record.metrics == {"progress": 0.5}


def test_a_killed_process_shows_as_killed_and_keeps_flushed_values(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import sys, time, loopml
        run = loopml.start_run(experiment="victim", params={"lr": 0.1})
        for step in range(1000):
            run.log_metric("loss", float(step))
        print(run.id, flush=True)
        time.sleep(600)
    """,
    )
    run_id = process.stdout.readline().strip()
    assert run_id, process.stderr.read()
    time.sleep(2.0)  # longer than the flush interval
    assert loopml.get_run(run_id).status == "running"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    reopened = loopml.open_workspace()  # opening the workspace notices the dead process
    record = loopml.get_run(run_id, workspace=reopened)
    assert record.status == "killed"
    assert "stopped without ending" in record.error
    assert loopml.metric_summaries(run_id, workspace=reopened)[0].count == 1000
    assert record.params == {"lr": 0.1}
    reopened.close()


def test_an_exception_handled_earlier_does_not_fail_runs_at_exit(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import sys, loopml
        run = loopml.start_run(experiment="calm")
        sys.last_value = ValueError("typed at a prompt long ago")  # as an interactive shell does
        print(run.id)
        """,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert loopml.get_run(out.strip()).status == "finished"


def test_ctrl_c_at_top_level_marks_an_open_run_killed(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import loopml
        run = loopml.start_run(experiment="interrupted")
        print(run.id, flush=True)
        raise KeyboardInterrupt
        """,
    )
    out, _ = process.communicate(timeout=60)
    assert loopml.get_run(out.strip()).status == "killed"


def test_a_forked_child_neither_logs_to_nor_ends_its_parents_run(tmp_path: Path) -> None:
    process = run_script(
        tmp_path,
        """
        import json, os, sys, loopml
        run = loopml.start_run(experiment="fork")
        run.log_metric("before", 1.0)
        pid = os.fork()
        if pid == 0:
            try:
                run.log_metric("child", 1.0)
                refused = False
            except loopml.LoopmlError:
                refused = True
            with loopml.start_run(name="in-child") as child:
                child.log_metric("inner", 2.0)
            print(json.dumps({"refused": refused, "child": child.id}), flush=True)
            sys.exit(0)  # a normal exit: the child's exit hooks run
        os.waitpid(pid, 0)
        status = loopml.get_run(run.id).status
        run.log_metric("after", 3.0)
        run.end()
        print(json.dumps({"parent": run.id, "status_after_child": status}))
        """,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    child_line, parent_line = (json.loads(line) for line in out.strip().splitlines())
    assert child_line["refused"] is True
    assert parent_line["status_after_child"] == "running"
    parent = loopml.get_run(parent_line["parent"])
    assert parent.status == "finished"
    assert {s.key: s.count for s in loopml.metric_summaries(parent.id)} == {"before": 1, "after": 1}
    child = loopml.get_run(child_line["child"])
    assert (child.parent_id, child.status, child.metrics) == (parent.id, "finished", {"inner": 2.0})
