"""The main job runs end to end and leaves the runs it reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import loopml

pytestmark = pytest.mark.slow
DEMO = Path(__file__).parents[2] / "examples" / "demo.py"


def test_the_demo_tracks_runs_and_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "Trained and tracked 9 runs" in done.stdout
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("Verdict:")]
    assert verdicts == ["Verdict: not ready", "Verdict: ready with warnings"]
    assert "arr_delay alone predicts the target almost perfectly" in " ".join(done.stdout.split())
    assert (tmp_path / ".loopml" / "reports" / "audit-flights.html").is_file()
    flights = loopml.data.get("flights")
    assert flights.record.rows == 336_776 and flights.record.time_column == "time_hour"
    features = loopml.data.get("flights.features")
    assert features.record.parent_id == flights.record.id
    assert "$ loopml runs list --experiment breast-cancer" in done.stdout
    runs = loopml.search_runs("breast-cancer", where="metrics.auc is not null", sort="-metrics.auc")
    assert len(runs) == 7 and all(run.status == "finished" for run in runs)
    assert runs[0].metrics["auc"] > 0.95
    assert runs[0].id in done.stdout
    dummy = next(run for run in runs if run.params.get("model") == "dummy")
    assert dummy.metrics["auc"] == 0.5  # the baseline every model beats
    split = loopml.search_runs("breast-cancer", where="name = prepare")[0]
    data = loopml.list_artifacts(split.id)[0]
    assert len(loopml.lineage(data.digest)["read_by"]) == 7
