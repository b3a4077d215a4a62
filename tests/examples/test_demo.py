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

pytestmark = pytest.mark.slow
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
    champion = loopml.models.get_version("flights@champion")
    assert champion.version == 1 and champion.card["owner"] == "ops analytics"
    assert [e.action for e in loopml.models.history("flights")] == ["register", "promote"]
    assert "flights@1 is now champion." in done.stdout
    assert (tmp_path / ".loopml" / "reports" / "model-card-flights.html").is_file()
    card = loopml.models.read_card("flights@1")
    assert "slices" in card.lower() and "carrier=" in card
    served = read_events("predictions", endpoint="flights")
    online = served[served["role"] == "champion"]
    assert len(online) == 3000 and set(online["status"]) == {"ok"}
    assert set(online["input.month"]) <= {4, 5, 6}
    assert "3,000 accepted, 0 unknown ids" in done.stdout
    assert len(loopml.serving.labelled("flights")) == 3000
    assert "Live AUC on April-June" in done.stdout
    batch = served[served["role"] == "batch"]
    scored = tmp_path / ".loopml" / "tmp" / "june-scored.parquet"
    assert len(batch) == len(pd.read_parquet(scored)) > 20_000
