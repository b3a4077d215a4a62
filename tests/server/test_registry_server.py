"""The registry through loopml server: editors register and move aliases, protected aliases
need an admin, the audit log names the token, and unknown models are 404."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import AccessDeniedError, ModelNotFoundError
from loopml.settings import load_settings
from loopml.workspace import Workspace

MODELS = "/api/v1/models"


def fitted() -> LogisticRegression:
    x = pd.DataFrame({"a": np.random.default_rng(0).normal(size=100)})
    return LogisticRegression().fit(x, x["a"] > 0)


@pytest.fixture
def server_settings() -> dict[str, object]:
    return {"protected_aliases": ["champion", "production"]}


def test_an_editor_moves_aliases_but_only_an_admin_moves_protected_ones(as_token) -> None:
    editor, admin = as_token("editor"), as_token("admin")
    first = loopml.models.register("churn", fitted(), workspace=editor)
    loopml.models.register("churn", fitted(), card=False, workspace=editor)
    assert first.ref == "churn@1" and first.created_by == "editor-bot" and first.card
    loopml.models.set_alias("churn", "challenger", 2, workspace=editor)
    for protected in ("champion", "production"):
        with pytest.raises(AccessDeniedError, match="role editor; this needs admin"):
            loopml.models.set_alias("churn", protected, 1, workspace=editor)
    loopml.models.set_alias("churn", "champion", 1, reason="first", workspace=admin)
    loopml.models.set_alias("churn", "champion", 2, reason="better", workspace=admin)
    with pytest.raises(AccessDeniedError, match="needs admin"):
        loopml.models.rollback("churn", workspace=editor)
    assert loopml.models.rollback("churn", workspace=admin).to_version == 1
    assert loopml.models.get_version("churn@champion", workspace=editor).version == 1
    log = loopml.models.history("churn", workspace=editor)
    assert [(e.action, e.alias, e.actor) for e in log] == [
        ("register", None, "editor-bot"),
        ("register", None, "editor-bot"),
        ("alias", "challenger", "editor-bot"),
        ("alias", "champion", "admin-bot"),
        ("alias", "champion", "admin-bot"),
        ("rollback", "champion", "admin-bot"),
    ]


def test_a_viewer_reads_the_registry_but_cannot_change_it(as_token) -> None:
    loopml.models.register("churn", fitted(), card=False, workspace=as_token("editor"))
    viewer = as_token("viewer")
    assert [v.ref for v in loopml.models.versions("churn", workspace=viewer)] == ["churn@1"]
    assert loopml.models.list_models(workspace=viewer)[0]["versions"] == 1
    with pytest.raises(AccessDeniedError, match="role viewer"):
        loopml.models.register("churn", fitted(), card=False, workspace=viewer)
    with pytest.raises(AccessDeniedError, match="role viewer"):
        loopml.models.set_alias("churn", "challenger", 1, workspace=viewer)


def test_an_unknown_model_is_404_and_model_not_found(as_token, url: str) -> None:
    editor = as_token("editor")
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nope'"):
        loopml.models.get_version("nope@champion", workspace=editor)
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nope'"):
        loopml.models.set_alias("nope", "challenger", 1, workspace=editor)
    secret = editor.settings.token
    answer = httpx.get(f"{url}{MODELS}/nope/events", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "ModelNotFoundError"


def test_the_api_refuses_what_the_sdk_would(behind: Workspace, url: str) -> None:
    """Without tokens (admin for all): bad names, aliases and values never reach the store."""
    loopml.models.register("churn", fitted(), card=False, workspace=behind)
    with httpx.Client(base_url=url + MODELS) as http:
        digest = "0" * 64
        version = {"digest": digest, "flavor": "sklearn", "info": {}, "user": "me"}
        bad_name = http.post("/no%20spaces/versions", json={"version": version})
        assert bad_name.status_code == 400 and "Model names are" in bad_name.text
        unknown_run = http.post("/churn/versions", json={"version": {**version, "run_id": "ab"}})
        assert unknown_run.json()["error"]["type"] == "RunNotFoundError"
        assert http.post("/churn/versions", json={"version": {}}).status_code == 422
        user = {"user": "me"}
        assert http.put("/churn/aliases/12", json={"version": 1, **user}).status_code == 400
        assert http.put("/churn/aliases/x", json={"version": 0, **user}).status_code == 422
        moved = http.put("/churn/aliases/x", json={"version": 1, "action": "delete", **user})
        assert moved.status_code == 422
        assert http.put("/churn/aliases/x", json={"version": 1, **user}).json()["to_version"] == 1
        card = {"card": {"markdown": digest, "html": digest}}
        assert http.put("/churn/versions/7/card", json=card).status_code == 404


def test_protected_aliases_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().protected_aliases == ["champion"]
    monkeypatch.setenv("LOOPML_PROTECTED_ALIASES", "champion, production")
    assert load_settings().protected_aliases == ["champion", "production"]
