"""Artifacts through loopml server: a client with only the server's URL and a token stores
and reads content, streamed and checked against its sha256 at both ends."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.artifacts.remote import RemoteArtifactStore
from loopml.errors import AccessDeniedError
from loopml.store import tokens as tokens_repo
from loopml.workspace import Workspace
from tests.conftest import make_workspace


@pytest.fixture
def server_settings() -> dict[str, object]:
    return {"server_max_upload_mb": 1}


def client(folder: Path, url: str, **settings: object) -> Workspace:
    return make_workspace(folder, server_url=url, **settings)


def test_a_client_with_only_the_servers_url_logs_and_reads_artifacts(behind, url, tmp_path):
    ws = client(tmp_path / "laptop", url)
    assert isinstance(ws.artifacts, RemoteArtifactStore)
    source = tmp_path / "report.txt"
    source.write_text("accuracy 0.9\n" * 10_000)
    with loopml.start_run(experiment="remote", workspace=ws) as run:
        logged = run.log_artifact(source)
        run.log_artifact({"a": [1, 2, 3]}, name="numbers")
    assert behind.artifacts.exists(logged.digest)  # kept by the server's store
    copy = loopml.download_artifact(run.id, "report.txt", tmp_path / "copy.txt", workspace=ws)
    assert Path(copy).read_bytes() == source.read_bytes()
    assert loopml.load_artifact(run.id, "numbers", workspace=ws) == {"a": [1, 2, 3]}


def test_a_model_registered_and_loaded_through_the_server(url, tmp_path) -> None:
    ws = client(tmp_path / "laptop", url)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    model = LogisticRegression().fit(frame, frame["a"] > 0)
    version = loopml.models.register("churn", model, workspace=ws)
    loaded = loopml.models.load(version.ref, workspace=ws)
    assert list(loaded.predict(frame)) == list(model.predict(frame))


def test_the_server_refuses_bytes_that_do_not_match_their_name(behind, url) -> None:
    data = b"the real content"
    wrong = hashlib.sha256(b"something else").hexdigest()
    answer = httpx.put(f"{url}/api/v1/artifacts/{wrong}", content=data)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "ArtifactCorruptedError"
    assert not behind.artifacts.exists(wrong)
    right = hashlib.sha256(data).hexdigest()
    assert httpx.put(f"{url}/api/v1/artifacts/{right}", content=data).status_code == 200
    assert httpx.get(f"{url}/api/v1/artifacts/{right}").content == data
    assert httpx.head(f"{url}/api/v1/artifacts/{wrong}").status_code == 404
    assert httpx.get(f"{url}/api/v1/artifacts/not-a-digest").status_code == 422


def test_oversized_uploads_get_413_and_viewers_cannot_upload(behind, url, tmp_path) -> None:
    big = b"\0" * (2 * 1024 * 1024)
    answer = httpx.put(f"{url}/api/v1/artifacts/{hashlib.sha256(big).hexdigest()}", content=big)
    assert answer.status_code == 413
    viewer = tokens_repo.create_token(behind.metadata, "dash", "viewer").token
    ws = client(tmp_path / "laptop", url, token=viewer)
    with pytest.raises(AccessDeniedError, match="viewer"):
        ws.artifacts.put_bytes(b"small")
    time.sleep(1.1)  # a server believes "no tokens" for a second at a time
    assert httpx.head(f"{url}/api/v1/artifacts/{'0' * 64}").status_code == 401
