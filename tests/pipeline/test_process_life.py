"""A pipeline whose process is killed mid-way is shown as killed, and resumes from there."""

from __future__ import annotations

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

SCRIPT = """
import time
from pathlib import Path
from loopml import Pipeline

def first() -> int:
    return 41

def second(first: int) -> int:
    if Path("hang").exists():
        Path("started").write_text("yes")
        time.sleep(120)
    return first + 1

train = Pipeline([first, second], name="slow")

if __name__ == "__main__":
    train.run()
"""


def test_a_killed_pipeline_is_marked_killed_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "slow_pipeline.py").write_text(textwrap.dedent(SCRIPT))
    (tmp_path / "hang").write_text("until killed")
    env = {**os.environ, "LOOPML_HOME": str(tmp_path / ".loopml")}
    process = subprocess.Popen([sys.executable, "slow_pipeline.py"], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    runs = loopml.search_runs()  # opening the workspace notices the dead process
    pipeline_run = next(r for r in runs if r.name == "slow")
    assert pipeline_run.status == "killed"
    children = {c.name: c.status for c in loopml.child_runs(pipeline_run.id)}
    assert children == {"first": "finished", "second": "killed"}

    (tmp_path / "hang").unlink()
    resumed = subprocess.run(
        ["loopml", "run", "resume", pipeline_run.id, "--json"],
        cwd=tmp_path,
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert '"status": "reused"' in resumed.stdout and '"status": "ran"' in resumed.stdout
