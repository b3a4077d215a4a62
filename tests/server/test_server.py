"""loopml server on a real uvicorn: tokens and roles, errors, writes done once, retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import loopml
from loopml.errors import AccessDeniedError, RunNotFoundError, StoreUnavailableError
from loopml.store import tokens as tokens_repo
from loopml.workspace import Workspace, use_workspace
from tests.conftest import make_workspace, running_server, served_workspace

RUNS = "/api/v1/runs"


@pytest.fixture
def server(behind: Workspace):
    with running_server(behind) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def token(behind: Workspace, name: str, role: str, expires_at: float | None = None) -> str:
    return tokens_repo.create_token(behind.metadata, name, role, expires_at).token


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_without_tokens_every_caller_may_everything(server: httpx.Client) -> None:
    assert server.get("/health").json() == {"status": "ok"}
    assert server.get("/api/v1/experiments").status_code == 200


def test_once_a_token_exists_every_request_needs_a_valid_one(behind, server) -> None:
    admin = token(behind, "admin", "admin")
    answer = server.get("/api/v1/experiments")
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "AccessDeniedError"
    assert server.get("/api/v1/experiments", headers=bearer("lml_bad")).status_code == 401
    forged = admin[:-4] + "AAAA"
    assert server.get("/api/v1/experiments", headers=bearer(forged)).status_code == 401
    assert server.get("/api/v1/experiments", headers=bearer(admin)).status_code == 200


def test_roles_limit_what_a_token_may_do(behind: Workspace, server: httpx.Client) -> None:
    viewer, editor = token(behind, "ana", "viewer"), token(behind, "ci", "editor")
    body = {"run_ids": []}
    refused = server.post(f"{RUNS}/heartbeat", json=body, headers=bearer(viewer))
    assert refused.status_code == 403
    assert "viewer" in refused.json()["error"]["message"]
    assert server.post(f"{RUNS}/heartbeat", json=body, headers=bearer(editor)).status_code == 200
    tokens = server.get("/api/v1/tokens", headers=bearer(editor))
    assert tokens.status_code == 403  # tokens are for admins


def test_a_missing_run_is_refused_the_same_before_and_after_it_exists(behind, server) -> None:
    """Without a valid token the answer is 401 whether or not the run exists."""
    token(behind, "admin", "admin")
    run = loopml.start_run(experiment="e", workspace=behind)
    run.end()
    for run_id in (run.id, "ffffffffffffffff"):
        assert server.get(f"{RUNS}/{run_id}").status_code == 401


def test_revoked_and_expired_tokens_are_refused(behind: Workspace, server) -> None:
    revoked = token(behind, "old", "viewer")
    expiring = token(behind, "brief", "viewer", time.time() + 1.5)
    assert server.get("/api/v1/experiments", headers=bearer(revoked)).status_code == 200
    tokens_repo.revoke_token(behind.metadata, "old")
    assert server.get("/api/v1/experiments", headers=bearer(revoked)).status_code == 401
    time.sleep(1.6)
    assert server.get("/api/v1/experiments", headers=bearer(expiring)).status_code == 401


def test_only_the_hash_of_a_token_is_stored(behind: Workspace) -> None:
    secret = token(behind, "ci", "editor")
    with behind.metadata.read() as connection:
        stored = connection.execute(sa.text("SELECT * FROM tokens")).mappings().one()
    assert secret.rsplit("_", 1)[1] not in str(dict(stored))


def test_the_sdk_through_a_server_records_the_tokens_name(behind, server, tmp_path) -> None:
    editor = token(behind, "ci-bot", "editor")
    client = served_workspace(behind, str(server.base_url), tmp_path / "client", token=editor)
    with use_workspace(client):
        with loopml.start_run(experiment="e", params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.5)
        record = loopml.get_run(run.id)
        with pytest.raises(RunNotFoundError, match="No run has the id"):
            loopml.get_run("abcdef")
    assert record.user == "ci-bot" and record.params == {"lr": 0.1}
    assert record.metrics == {"loss": 0.5} and record.status == "finished"
    client.close()


def test_a_viewer_token_reads_but_cannot_write_through_the_sdk(behind, server, tmp_path) -> None:
    viewer = token(behind, "ana", "viewer")
    client = served_workspace(behind, str(server.base_url), tmp_path / "client", token=viewer)
    with pytest.raises(AccessDeniedError, match="viewer"):
        loopml.start_run(experiment="e", workspace=client)
    assert loopml.list_experiments(workspace=client) == []
    client.close()


def test_a_write_sent_twice_under_one_key_is_done_once(behind, server) -> None:
    run = loopml.start_run(experiment="e", workspace=behind)
    body = {"values": [["loss", 0.5, 0, time.time()]]}
    headers = {"Idempotency-Key": "k-1"}
    for _ in range(2):
        assert server.post(f"{RUNS}/{run.id}/metrics", json=body, headers=headers).is_success
    assert [p.value for p in loopml.metric_history(run.id, "loss", workspace=behind)] == [0.5]
    run.end()


def test_errors_answer_with_their_type_and_no_traceback(behind, server) -> None:
    missing = server.get(f"{RUNS}/0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "RunNotFoundError"
    bad = server.post(f"{RUNS}/search", json={"where": "metrics.auc >>> 1"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "InvalidQueryError"
    unknown = server.post(f"{RUNS}/search", json={"unknown": 1})
    assert unknown.status_code == 422
    assert "Traceback" not in missing.text + bad.text + unknown.text


def test_writes_wait_for_a_server_that_is_briefly_away(behind: Workspace, tmp_path) -> None:
    with running_server(behind) as url:
        port = int(url.rsplit(":", 1)[1])
    client = make_workspace(tmp_path / "client", server_url=url, server_retry_seconds=30)
    started = threading.Event()

    def start_later() -> None:
        time.sleep(1.0)
        with running_server(behind, port):
            started.set()
            time.sleep(5)

    later = threading.Thread(target=start_later)
    later.start()
    run = loopml.start_run(experiment="e", workspace=client)  # retried until the server is up
    assert started.is_set()
    run.end()
    later.join()
    assert loopml.get_run(run.id, workspace=behind).status == "finished"
    client.close()


def test_a_server_that_stays_away_is_reported_not_ignored(tmp_path: Path) -> None:
    client = make_workspace(tmp_path, server_url="http://127.0.0.1:9", server_retry_seconds=0.5)
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        loopml.start_run(experiment="e", workspace=client)
    client.close()


def test_the_token_commands(cli, tmp_path: Path) -> None:
    made = cli("server", "token", "create", "--name", "ci", "--role", "editor", "--expires", "90d")
    assert made.code == 0 and made.out.startswith("lml_")
    listed = cli("server", "token", "list", "--json")
    assert '"name": "ci"' in listed.out and '"role": "editor"' in listed.out
    assert made.out.strip() not in listed.out
    assert cli("server", "token", "create", "--name", "ci").code == 2  # exists
    assert cli("server", "token", "create", "--name", "x", "--role", "root").code == 2
    assert cli("server", "token", "create", "--name", "x", "--expires", "soon").code == 2
    assert cli("server", "token", "revoke", "ci").code == 0
    missing = cli("server", "token", "revoke", "nobody")
    assert missing.code == 2 and "No token is named 'nobody'" in missing.err


def test_a_server_without_tokens_refuses_to_listen_beyond_loopback(cli) -> None:
    refused = cli("server", "--host", "0.0.0.0")
    assert refused.code == 2 and "token create" in refused.err


def test_the_spec_lists_every_operation_with_its_schemas(server: httpx.Client) -> None:
    spec = server.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/tokens", "/health"} <= set(paths)
    answer = paths["/api/v1/runs/{run_id}"]["get"]["responses"]["200"]["content"]
    record = answer["application/json"]["schema"]
    assert record["title"] == "RunRecord"
    assert {"id", "params", "metrics"} <= set(record["properties"])
    search = paths["/api/v1/runs/search"]["post"]["responses"]["200"]["content"]
    page = search["application/json"]["schema"]
    assert page["properties"]["runs"]["items"]["$ref"].endswith("/RunRecord")
    assert "RunRecord" in spec["components"]["schemas"]
    assert {"401", "403", "404"} <= set(paths["/api/v1/runs/{run_id}"]["get"]["responses"])


def test_lists_page_with_cursors_over_http(behind: Workspace, server: httpx.Client) -> None:
    for name in ["c", "a", "b"]:
        assert server.post("/api/v1/models", json={"name": name}).status_code == 200
    first = server.get("/api/v1/models", params={"page_size": 2}).json()
    assert [m["name"] for m in first["items"]] == ["a", "b"] and first["next_cursor"]
    rest = server.get("/api/v1/models", params={"page_size": 2, "cursor": first["next_cursor"]})
    assert [m["name"] for m in rest.json()["items"]] == ["c"]
    assert rest.json()["next_cursor"] is None
    assert server.get("/api/v1/models", params={"page_size": 0}).status_code == 422
    assert server.get("/api/v1/models", params={"page_size": 10_001}).status_code == 422
    forged = server.get("/api/v1/models", params={"cursor": "forged"})
    assert forged.status_code == 400 and "not a cursor" in forged.json()["error"]["message"]
