"""Eight processes logging to one SQLite workspace at once lose nothing and never fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import loopml

pytestmark = pytest.mark.slow

PROCESSES = 8
VALUES = 3000

WORKER = """
import json, sys, time
import loopml

index, start_at = int(sys.argv[1]), float(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.001)
with loopml.start_run(experiment="crowd", name=f"worker-{index}", params={"index": index}) as run:
    for step in range(VALUES):
        run.log_metric("value", float(index * 100000 + step), step=step)
        if step % 500 == 0:
            run.log_params({f"p{step}": step})
            run.set_tags({"progress": str(step)})
            run.log_artifact(f"{index}-{step}".encode(), name=f"chunk-{step}")
    run.log_metrics({"done": 1.0})
print(json.dumps({"id": run.id}))
"""


def test_eight_writers_lose_no_value_and_never_see_a_lock_error(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER.replace("VALUES", str(VALUES))))
    env = {
        **os.environ,
        "LOOPML_HOME": str(tmp_path / ".loopml"),
        "LOOPML_METRIC_BUFFER_LIMIT": "200",  # many small transactions: maximum contention
        "LOOPML_METRIC_FLUSH_INTERVAL": "0.05",
        "LOOPML_SQLITE_BUSY_TIMEOUT": "120",
    }
    loopml.open_workspace().close()  # the schema exists before the race starts
    start_at = time.time() + 3.0
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), str(start_at)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    results = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_out, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
        assert "locked" not in err
    run_ids = [json.loads(out)["id"] for out, _ in results]
    records = loopml.search_runs("crowd", sort="params.index")
    assert [r.id for r in records] == run_ids
    for index, record in enumerate(records):
        assert record.status == "finished"
        assert record.metrics == {"value": float(index * 100000 + VALUES - 1), "done": 1.0}
        history = loopml.metric_history(record.id, "value")
        assert [p.value for p in history] == [float(index * 100000 + s) for s in range(VALUES)]
        assert len(record.params) == 1 + VALUES // 500
        assert len(loopml.list_artifacts(record.id)) == VALUES // 500
