"""Ways to say who calls loopml server besides a bearer token: HTTP Basic with a token as
the password (so curl -u and MLflow's username and password work), and the user an
authenticating proxy in front of the server signs in (oauth2-proxy's X-Forwarded-Email)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from sklearn.dummy import DummyClassifier

import loopml
from loopml.settings import load_settings
from loopml.store import tokens as tokens_repo
from loopml.store.tokens import Gate, Presented, Refused, Trust
from loopml.workspace import Workspace

MODELS = "/api/v1/models"
HEADER = "X-Forwarded-Email"
PROXIED = {
    "server_trusted_header": HEADER,
    "server_trusted_roles": {"ana@example.com": "admin", "*": "viewer"},
}


def test_basic_carries_a_token_as_its_password(behind: Workspace, url: str) -> None:
    secret = tokens_repo.create_token(behind.metadata, "ci", "editor").token
    with httpx.Client(base_url=url) as client:
        made = client.post(MODELS, json={"name": "churn"}, auth=("anyone", secret))
        assert made.status_code == 200, made.text
        wrong = client.get(MODELS, auth=("ci", "lml_000000000000_" + "x" * 30))
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"] == tokens_repo.CHALLENGE
        garbled = client.get(MODELS, headers={"Authorization": "Basic not-base64!"})
        assert garbled.status_code == 401
        assert "base64 of 'user:token'" in garbled.json()["error"]["message"]
        assert client.get(MODELS).status_code == 401


def test_mlflows_username_and_password_carry_a_token(behind: Workspace, url: str) -> None:
    secret = tokens_repo.create_token(behind.metadata, "notebook", "editor").token
    script = (
        "import mlflow\n"
        "mlflow.set_experiment('basic')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_metric('auc', 0.8)\n"
        "print(run.info.run_id)\n"
    )
    env = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": "ana",
        "MLFLOW_TRACKING_PASSWORD": secret,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = loopml.get_run(done.stdout.split()[-1], workspace=behind)
    assert run.metrics["auc"] == 0.8 and run.user == "notebook"


@pytest.mark.parametrize("server_settings", [PROXIED])
def test_the_user_a_trusted_proxy_names_calls_in_their_role(
    behind: Workspace, url: str, server_settings
) -> None:
    with httpx.Client(base_url=url) as client:
        ana, bob = {HEADER: "ana@example.com"}, {HEADER: "bob@example.com"}
        assert client.post(MODELS, json={"name": "churn"}, headers=ana).status_code == 200
        assert client.get(MODELS, headers=bob).status_code == 200
        forbidden = client.post(MODELS, json={"name": "fraud"}, headers=bob)
        assert forbidden.status_code == 403
        assert "'bob@example.com' has the role viewer" in forbidden.json()["error"]["message"]
        # a workspace without tokens is not open once a proxy says who calls
        assert client.get(MODELS).status_code == 401
    fitted = DummyClassifier().fit([[0], [1]], [0, 1])
    model = loopml.models.register("churn", fitted, workspace=behind)
    with httpx.Client(base_url=url) as client:
        moved = client.put(
            f"{MODELS}/churn/aliases/champion",
            json={"version": model.version, "user": "someone", "reason": "first"},
            headers=ana,
        )
        assert moved.status_code == 200, moved.text
    assert loopml.models.history("churn", workspace=behind)[-1].actor == "ana@example.com"


@pytest.mark.parametrize("server_settings", [{**PROXIED, "server_trusted_proxies": ["10.0.0.0/8"]}])
def test_the_header_is_ignored_from_an_address_that_is_not_the_proxys(url, server_settings):
    with httpx.Client(base_url=url) as client:
        refused = client.get(MODELS, headers={HEADER: "ana@example.com"})
    assert refused.status_code == 401
    assert "come through the signing-in proxy" in refused.json()["error"]["message"]


def test_a_user_without_a_role_is_refused() -> None:
    trust = Trust(HEADER, {"ana@example.com": "admin"})
    gate = Gate(store=None, trust=trust)
    presented = gate.read({HEADER: "eve@example.com"}, "127.0.0.1")
    with pytest.raises(Refused, match="no role on this server") as refused:
        gate.caller(presented, "viewer")
    assert refused.value.status == 403
    assert gate.read({HEADER: "ana@example.com"}, "192.0.2.7") == Presented("", None)
    assert gate.caller(gate.read({HEADER: " ana@example.com "}, "::1"), "admin").actor == (
        "ana@example.com"
    )


def test_trust_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_SERVER_TRUSTED_HEADER", HEADER)
    monkeypatch.setenv("LOOPML_SERVER_TRUSTED_ROLES", '{"*": "editor"}')
    monkeypatch.setenv("LOOPML_SERVER_TRUSTED_PROXIES", "127.0.0.1, 10.1.0.0/16")
    trust = Trust.from_settings(load_settings(tmp_path))
    assert trust == Trust(HEADER, {"*": "editor"}, ("127.0.0.1", "10.1.0.0/16"))
    assert trust.user({HEADER: "ana"}, "10.1.2.3") == "ana"
    monkeypatch.setenv("LOOPML_SERVER_TRUSTED_ROLES", "ana=admin")
    with pytest.raises(Exception, match="not a JSON object of user to role"):
        load_settings(tmp_path)
