"""The main job runs end to end and leaves the runs it reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import loopml
from loopml.events import read_events

# The demo replays a year through a live server in about six minutes on two cores: the
# subprocess has a timeout of its own, so the suite's 300 s per test does not apply.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
DEMO = Path(__file__).parents[2] / "examples" / "demo.py"


def test_the_demo_tracks_runs_and_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("Verdict:")]
    assert verdicts == ["Verdict: not ready", "Verdict: ready with warnings"]
    assert "arr_delay alone predicts the target almost perfectly" in " ".join(done.stdout.split())
    assert (tmp_path / ".loopml" / "reports" / "audit-flights.html").is_file()
    flights = loopml.data.get("flights")
    assert flights.record.rows == 336_776 and flights.record.time_column == "time_hour"
    features = loopml.data.get("flights.features")
    assert features.record.parent_id == flights.record.id
    assert "8 of 8 steps from cache" in done.stdout  # the second run of the pipeline
    pipeline_runs = loopml.search_runs(where="name = flights", sort="start_time")
    assert [run.status for run in pipeline_runs][:2] == ["finished", "finished"]
    first = pipeline_runs[0]
    assert first.metrics["val_auc"] > first.metrics["baseline_auc"] == 0.5
    assert pipeline_runs[1].metrics["val_auc"] == first.metrics["val_auc"]  # replayed
    steps = loopml.child_runs(first.id)
    assert [s.name for s in steps] == [
        "load",
        "validated",
        "features",
        "split",
        "baseline",
        "model",
        "evaluation",
        "trained",
    ]
    read = loopml.lineage(flights.record.digest)["read_by"]
    assert steps[0].id in {record.run_id for record in read}
    sweep = loopml.search_runs(where="name = 'sweep:flights'")[0]
    assert sweep.params["trials"] == 8 and len(loopml.child_runs(sweep.id)) == 8
    assert "Run it again: loopml run flights_pipeline:train --param max_depth=" in done.stdout
    first_version = loopml.models.get_version("flights@1")
    assert first_version.card["owner"] == "ops analytics"
    assert [e.action for e in loopml.models.history("flights")][:2] == ["register", "promote"]
    assert "flights@1 is now champion." in done.stdout
    assert (tmp_path / ".loopml" / "reports" / "model-card-flights.html").is_file()
    card = loopml.models.read_card("flights@1")
    assert "slices" in card.lower() and "carrier=" in card
    _the_loop_ran_by_itself(done.stdout, tmp_path)


def _the_loop_ran_by_itself(stdout: str, home: Path) -> None:
    served = read_events("predictions", endpoint="flights")
    online = served[served["role"].isin(["champion", "canary"])]
    assert len(online) == 40_000 and set(online["status"]) == {"ok"}
    assert set(online["input.month"]) == set(range(3, 13))
    assert len(loopml.serving.labelled("flights").query("role != 'shadow'")) == 40_000
    windows = loopml.monitoring.windows("flights")
    assert [w.label for w in windows] == [f"2013-{m:02d}" for m in range(3, 13)]
    assert all(w.status == "ok" and w.rows == 4000 for w in windows[1:])
    drift = loopml.monitoring.series("flights", ["drifted_share"])
    assert (drift["value"] > 0).all()  # the seasons move the weather features
    actions = [d.action for d in loopml.loop.decisions("flights")]
    for action in ("retrain", "gate_passed", "refit", "canary", "promote", "held", "pool"):
        assert action in actions, actions
    assert actions.index("refit") < actions.index("canary") < actions.index("promote")
    assert actions.count("harmful") == actions.count("rollback")  # none left standing
    retrains = [d for d in loopml.loop.decisions("flights") if d.action == "retrain"]
    sources = {d.evidence["params"]["source"].partition("@")[0] for d in retrains}
    assert sources == {"flights.served"}  # the loop learned from what it served
    served_data = loopml.data.get(retrains[-1].evidence["params"]["source"])
    assert served_data.record.parent_id == loopml.data.get("flights.base").record.id
    assert loopml.models.get_version("flights@champion").version > 1
    rows = [line for line in stdout.splitlines() if line.startswith("2013-")]
    table = [line.split() for line in rows if len(line.split()) == 4]
    assert [line[0] for line in table] == [f"2013-{m:02d}" for m in range(3, 13)]
    assert all(0.55 < float(value) < 0.85 for line in table for value in line[1:])
    assert (home / ".loopml" / "reports" / "monitoring-flights.html").is_file()
    batch = served[served["role"] == "batch"]
    scored = home / ".loopml" / "tmp" / "december-scored.parquet"
    assert len(batch) == len(pd.read_parquet(scored)) > 20_000
