"""Model servers take tokens: /feedback needs an editor's wherever the workspace has tokens,
and the scoring routes the role of serve_token_role (--token-role)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loopml.serving import create_app
from loopml.store import tokens as tokens_repo
from loopml.workspace import use_workspace
from tests.conftest import make_workspace
from tests.serving.conftest import _register_churn

ROW = {"a": 0.5, "b": -0.2}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def served(tmp_path: Path, **settings: object):
    workspace = make_workspace(tmp_path, **settings)
    with use_workspace(workspace):
        _register_churn()
    return workspace


def label_for(client: TestClient, headers: dict[str, str]) -> dict:
    answer = client.post("/predict", json=ROW, headers=headers)
    assert answer.status_code == 200, answer.text
    return {"id": answer.json()["predictions"][0]["id"], "label": True}


def test_without_tokens_a_model_server_is_open(tmp_path: Path) -> None:
    workspace = served(tmp_path, serve_token_role="viewer")
    with TestClient(create_app("churn", workspace=workspace)) as client:
        assert client.post("/feedback", json=label_for(client, {})).status_code == 200


def test_feedback_needs_an_editors_token_once_the_workspace_has_tokens(tmp_path: Path) -> None:
    workspace = served(tmp_path)
    viewer = tokens_repo.create_token(workspace.metadata, "dash", "viewer").token
    editor = tokens_repo.create_token(workspace.metadata, "labeller", "editor").token
    with TestClient(create_app("churn", workspace=workspace)) as client:
        label = label_for(client, {})  # predictions stay open without --token-role
        refused = client.post("/feedback", json=label)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == tokens_repo.CHALLENGE
        assert client.post("/feedback", json=label, headers=bearer("lml_x")).status_code == 401
        forbidden = client.post("/feedback", json=label, headers=bearer(viewer))
        assert forbidden.status_code == 403
        assert "needs editor" in forbidden.json()["error"]["message"]
        accepted = client.post("/feedback", json=label, headers=bearer(editor))
        assert accepted.status_code == 200 and accepted.json()["accepted"] == 1


def test_token_role_guards_every_scoring_route(tmp_path: Path) -> None:
    workspace = served(tmp_path, serve_token_role="viewer")
    viewer = tokens_repo.create_token(workspace.metadata, "app", "viewer").token
    routes = [
        ("POST", "/predict", ROW),
        ("POST", "/invocations", {"dataframe_records": [ROW]}),
        ("GET", "/deployment", None),
        ("GET", "/v2/models/churn", None),
    ]
    with TestClient(create_app("churn", workspace=workspace)) as client:
        for method, path, body in routes:
            assert client.request(method, path, json=body).status_code == 401, path
            answer = client.request(method, path, json=body, headers=bearer(viewer))
            assert answer.status_code == 200, (path, answer.text)
        assert client.get("/v2/health/live").status_code == 200  # probes stay open
        assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_the_token_role_setting_reads_from_the_environment(tmp_path, monkeypatch, role) -> None:
    monkeypatch.setenv("LOOPML_SERVE_TOKEN_ROLE", role)
    assert make_workspace(tmp_path).settings.serve_token_role == role
