"""Deployments, alerts and the loop's records through loopml server: an admin changes what
serves an endpoint, an editor records what a model server or a scheduler saw, a viewer reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import AccessDeniedError
from loopml.loop.history import decisions, record
from loopml.loop.schedule import Lease
from loopml.serving import Deployment, deploy, deployment
from loopml.serving import operations as ops
from loopml.serving.deployments import alerts, end_canary, raise_alert
from loopml.workspace import Workspace
from tests.conftest import make_workspace

ROLES = ("viewer", "editor", "admin")


@pytest.fixture
def behind(tmp_path: Path) -> Iterator[Workspace]:
    """The server's workspace, with "churn" registered: versions 1 (champion) and 2."""
    ws = make_workspace(tmp_path / "server")
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    for c in (1.0, 0.1):
        model = LogisticRegression(C=c).fit(x, x["a"] > 0)
        loopml.models.register("churn", model, card=False, workspace=ws)
    loopml.models.set_alias("churn", "champion", 1, workspace=ws)
    yield ws
    ws.close()


@pytest.fixture
def client(as_token) -> dict[str, Workspace]:
    """A workspace through the server for a token of each role, by role."""
    return {role: as_token(role, f"{role}-token") for role in ROLES}


def test_only_an_admin_changes_a_deployment_and_a_viewer_reads_it(client, behind) -> None:
    spec = {"shadow": "2"}
    for role in ("viewer", "editor"):
        with pytest.raises(AccessDeniedError, match=f"role {role}; this needs admin"):
            deploy("churn", spec, workspace=client[role])
    assert deployment("churn", workspace=behind) == (Deployment(), 0)  # nothing changed
    assert deploy("churn", spec, workspace=client["admin"]) == 1
    assert deployment("churn", workspace=client["viewer"]) == (Deployment(shadow="2"), 1)
    last = loopml.models.history("churn", workspace=behind)[-1]
    assert (last.action, last.actor) == ("deploy", "admin-token")


def test_a_model_servers_editor_token_ends_a_canary_and_refuses_a_version(client) -> None:
    """Taking traffic back to the champion is what a model server does on its own."""
    canary = {"canary": {"version": "2", "fraction": 0.5}}
    assert deploy("churn", canary, workspace=client["admin"]) == 1
    with pytest.raises(AccessDeniedError, match="needs editor"):
        end_canary("churn", "too slow", workspace=client["viewer"])
    with pytest.raises(AccessDeniedError, match="needs editor"):
        ops.refuse_version(client["viewer"].metadata, "churn", 2, "canary", 1, "boom", 0.0)
    assert end_canary("churn", "too slow", expected=1, workspace=client["editor"]) == 2
    found = ops.refuse_version(client["editor"].metadata, "churn", 2, "canary", 1, "boom", 0.0)
    assert (found.failures, found.retry_at) == (1, 5.0)
    assert [r.version for r in ops.get_deployment(client["viewer"].metadata, "churn").refused] == [
        2
    ]
    kinds = [a.kind for a in alerts("churn", workspace=client["viewer"])]
    assert kinds == ["canary_rolled_back", "load_failed"]


def test_an_editor_raises_alerts_and_a_viewer_reads_them(client) -> None:
    with pytest.raises(AccessDeniedError, match="needs editor"):
        raise_alert("churn", "rule:drift", "psi breached", workspace=client["viewer"])
    raised = raise_alert(
        "churn", "rule:drift", "psi breached", {"psi": 0.4}, workspace=client["editor"]
    )
    assert alerts("churn", workspace=client["viewer"]) == [raised]


def test_the_loop_records_and_reads_its_history_through_the_server(client, behind) -> None:
    with pytest.raises(AccessDeniedError, match="needs editor"):
        record("churn", "retrain", "drift on a", workspace=client["viewer"])
    made = record(
        "churn",
        "retrain",
        "drift on a",
        version=2,
        evidence={"psi": 0.4},
        workspace=client["editor"],
    )
    assert decisions("churn", workspace=client["viewer"]) == [made]
    assert decisions("churn", workspace=behind) == [made]
    with pytest.raises(AccessDeniedError, match="needs editor"):
        Lease("loop:churn", client["viewer"], seconds=30).acquire()
    scheduler, standby = (Lease("loop:churn", client["editor"], seconds=30) for _ in range(2))
    assert scheduler.acquire() and not standby.acquire()
    scheduler.release()
    assert standby.acquire() and standby.term == 2


def test_the_spec_lists_the_serving_and_loop_routes(client) -> None:
    import httpx

    url = client["viewer"].settings.server_url
    paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"get", "put"} <= set(paths["/api/v1/deployments/{name}"])
    assert {"get", "post"} <= set(paths["/api/v1/deployments/{name}/alerts"])
    assert {"get", "post"} <= set(paths["/api/v1/loop/decisions/{name}"])
    assert "post" in paths["/api/v1/loop/leases/{name}"]
