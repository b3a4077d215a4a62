"""A team's log: servers on two hosts (two workspaces with their own home and host id) share
one metadata store and one event store on S3, and monitoring, labels and the CLI read the
log whole."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.monitoring import monitor
from loopml.serving import create_app, labelled
from loopml.workspace import use_workspace
from tests.conftest import make_workspace

HOUR = 3600
ROWS = [{"a": 0.5, "b": 1.0}, {"a": -1.0, "b": 0.2}, {"a": 2.0, "b": -3.0}]


@pytest.fixture
def hosts(tmp_path: Path, s3_endpoint: str, s3_bucket: str):
    """Two hosts' workspaces over one SQLite file and one bucket, with "churn" registered."""
    shared = {
        "metadata_url": f"sqlite:///{tmp_path / 'shared.db'}",
        "events_url": f"s3://{s3_bucket}/events",
        "artifacts_url": f"s3://{s3_bucket}/artifacts",
        "s3_endpoint_url": s3_endpoint,
    }
    made = []
    for host in ("web-1", "web-2"):
        folder = tmp_path / host
        folder.mkdir()
        made.append(make_workspace(folder, host_id=host, **shared))
    with use_workspace(made[0]):
        rng = np.random.default_rng(0)
        x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
        version = loopml.models.register(
            "churn", LogisticRegression().fit(x, x["a"] > 0), card=False
        )
        loopml.models.set_alias("churn", "champion", version.version)
    yield made
    for workspace in made:
        workspace.close()


def test_two_hosts_serve_one_log_that_monitoring_and_labels_read_whole(hosts) -> None:
    first, second = hosts
    ids = {}
    for workspace in hosts:
        with TestClient(create_app("churn", workspace=workspace)) as client:
            answer = client.post("/predict", json={"records": ROWS})
            assert answer.status_code == 200
            ids[workspace.settings.host_id] = [p["id"] for p in answer.json()["predictions"]]
    for workspace in hosts:  # each host seals its own spool into the bucket
        workspace.events.close()
        workspace.events.seal("predictions")
    assert not list((Path(first.home) / "events" / "spool").glob("*.jsonl"))
    # labels for host 1's predictions arrive at host 2, and the other way round
    with TestClient(create_app("churn", workspace=second)) as client:
        told = client.post("/feedback", json=[{"id": i, "label": True} for i in ids["web-1"]])
    assert told.json() == {"accepted": 3, "unknown": []}
    with TestClient(create_app("churn", workspace=first)) as client:
        told = client.post("/feedback", json=[{"id": i, "label": False} for i in ids["web-2"]])
    assert told.json() == {"accepted": 3, "unknown": []}
    for workspace in hosts:  # as their servers do every minute
        workspace.events.close()
        workspace.events.seal("feedback")
    with use_workspace(first):
        joined = labelled("churn")
    assert set(joined["id"]) == set(ids["web-1"]) | set(ids["web-2"])
    window = monitor("churn", since=time.time() - HOUR, until=time.time() + 1, workspace=second)
    assert window.window.rows == 6  # both hosts' requests, three rows each
