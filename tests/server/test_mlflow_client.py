"""The real MLflow client (3.x here, 2.x in its own environment) against a real loopml server:
an MLflow user's code, unchanged, logs ordinary loopml runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests

import loopml
from loopml.store import tokens as tokens_repo

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MLFLOW2_PYTHON = Path(
    os.environ.get("LOOPML_TEST_MLFLOW2_PYTHON", ROOT / ".venv-mlflow2/bin/python")
)
MLFLOW2_REQUIRED = os.environ.get("LOOPML_TEST_MLFLOW2_REQUIRED") == "1"


@pytest.fixture
def server_settings() -> dict[str, object]:
    return {"server_max_upload_mb": 1}


@pytest.fixture
def tracking_uri(url: str, monkeypatch: pytest.MonkeyPatch):
    """MLFLOW_TRACKING_URI set to a loopml server, as an MLflow user would set it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(url)
    yield url
    mlflow.end_run()
    mlflow.set_tracking_uri(None)


def files(folder: Path, names: dict[str, str]) -> Path:
    for name, text in names.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_run_logged_with_mlflow_is_an_ordinary_loopml_run(behind, tracking_uri, tmp_path):
    source = files(
        tmp_path / "out", {"note.txt": "hello", "plots/a.txt": "a", "plots/sub/b.txt": "b"}
    )
    mlflow.set_experiment("churn")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"l1": 0.1, "depth": 3})
        mlflow.log_metric("rmse", 0.8, step=0)
        mlflow.log_metrics({"rmse": 0.7, "mae": 0.5}, step=1)
        mlflow.set_tag("team", "risk")
        mlflow.log_artifact(str(source / "note.txt"))
        mlflow.log_artifacts(str(source / "plots"), artifact_path="plots")

    record = loopml.get_run(run.info.run_id, workspace=behind)
    assert (record.experiment, record.name, record.status) == ("churn", "first", "finished")
    assert record.params == {"alpha": "0.5", "l1": "0.1", "depth": "3"}
    assert record.metrics == {"rmse": 0.7, "mae": 0.5}
    assert record.tags["team"] == "risk"
    history = loopml.metric_history(run.info.run_id, "rmse", workspace=behind)
    assert [(p.step, p.value) for p in history] == [(0, 0.8), (1, 0.7)]
    outputs = {a.name: a for a in loopml.list_artifacts(run.info.run_id, workspace=behind)}
    assert set(outputs) == {"note.txt", "plots/a.txt", "plots/sub/b.txt"}
    assert behind.artifacts.get_bytes(outputs["plots/sub/b.txt"].digest) == b"b"

    client = MlflowClient()
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "rmse")] == [
        (0, 0.8),
        (1, 0.7),
    ]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt", "plots"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == [
        "plots/a.txt",
        "plots/sub",
    ]
    target = tmp_path / "download"
    mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="plots", dst_path=str(target)
    )
    assert (target / "plots" / "sub" / "b.txt").read_text() == "b"


def test_search_runs_filters_and_orders_as_mlflow_does(tracking_uri) -> None:
    mlflow.set_experiment("sweep")
    for alpha in (0.1, 0.2, 0.3, 0.4):
        with mlflow.start_run():
            mlflow.log_param("alpha", alpha)
            mlflow.log_metric("rmse", 1 - alpha)
    with mlflow.start_run():
        mlflow.log_metric("rmse", 0.05)
        mlflow.end_run(status="FAILED")
    found = mlflow.search_runs(
        experiment_names=["sweep"],
        filter_string="metrics.rmse < 0.85 and attributes.status = 'FINISHED'",
        order_by=["metrics.rmse DESC"],
    )
    assert list(found["params.alpha"]) == ["0.2", "0.3", "0.4"]
    assert list(found["metrics.rmse"]) == pytest.approx([0.8, 0.7, 0.6])
    paged = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("sweep").experiment_id], max_results=2
    )
    assert len(paged) == 2 and paged.token


def test_a_model_logged_with_mlflow_loads_back_by_its_uris(behind, tracking_uri) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(80, 3))
    y = x[:, 0] - x[:, 1] > 0
    fitted = LogisticRegression().fit(x, y)
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(fitted, name="model")

    for uri in (f"runs:/{run.info.run_id}/model", logged.model_uri):
        loaded = mlflow.pyfunc.load_model(uri)
        assert list(loaded.predict(x[:10])) == list(fitted.predict(x[:10]))
    names = {a.name for a in loopml.list_artifacts(run.info.run_id, workspace=behind)}
    assert "model/MLmodel" in names  # the model's files are the run's outputs
    listed = MlflowClient().list_artifacts(run.info.run_id, "model")
    assert len(listed) == len({a.path for a in listed})  # listed once, not twice


def test_the_mlflow_token_variable_carries_a_loopml_token(behind, tracking_uri, monkeypatch):
    editor = tokens_repo.create_token(behind.metadata, "ci", "editor").token
    viewer = tokens_repo.create_token(behind.metadata, "ana", "viewer").token
    with pytest.raises(MlflowException, match="token"):
        mlflow.set_experiment("secured")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", viewer)
    with pytest.raises(MlflowException, match="viewer"):
        mlflow.set_experiment("secured")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", editor)
    mlflow.set_experiment("secured")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5)
    assert loopml.get_run(run.info.run_id, workspace=behind).user == "ci"


def test_bad_requests_get_mlflow_errors_not_server_errors(behind, tracking_uri, tmp_path):
    client = MlflowClient()
    assert mlflow.get_experiment_by_name("nothing") is None
    with pytest.raises(MlflowException) as missing:
        client.get_run("ffffffffffffffff")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    mlflow.set_experiment("errors")
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 1)
        with pytest.raises(MlflowException) as conflict:
            mlflow.log_param("alpha", 2)
        assert conflict.value.error_code == "INVALID_PARAMETER_VALUE"
        big = tmp_path / "big.bin"
        big.write_bytes(b"\0" * (2 * 1024 * 1024))
        with pytest.raises(requests.HTTPError, match="413"):
            mlflow.log_artifact(str(big))
    base = f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/runs/{run.info.run_id}"
    escaping = httpx.put(f"{base}/..%2F..%2Fescape.txt", content=b"x")
    assert escaping.status_code == 400
    assert escaping.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not any(
        a.name.endswith("escape.txt")
        for a in loopml.list_artifacts(run.info.run_id, workspace=behind)
    )


def test_the_mlflow_2_client_works_against_the_server(behind, tracking_uri, tmp_path) -> None:
    if not MLFLOW2_PYTHON.exists():
        reason = f"no MLflow 2.x client at {MLFLOW2_PYTHON}: run 'make .venv-mlflow2/.installed'"
        if MLFLOW2_REQUIRED:
            pytest.fail(f"{reason} (LOOPML_TEST_MLFLOW2_REQUIRED=1)")
        pytest.skip(reason)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    answer = subprocess.run(
        [str(MLFLOW2_PYTHON), str(ROOT / "tests/mlflow2/workflow.py")],
        env={**environment, "MLFLOW_TRACKING_URI": tracking_uri},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert "has failed" not in answer.stderr, answer.stderr[-3000:]
    seen = json.loads(answer.stdout.strip().splitlines()[-1])
    assert seen["version"].startswith("2.")
    assert seen["found"] == [seen["run_id"]]
    assert seen["history"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert seen["artifacts"] == ["model", "note.txt", "plots"]
    assert seen["downloaded"] == ["a.txt"]
    assert seen["predictions"] == seen["expected"]
    record = loopml.get_run(seen["run_id"], workspace=behind)
    assert record.experiment == "mlflow2" and record.params["depth"] == "3"


def test_a_model_registered_with_mlflow_is_a_loopml_version_that_loopml_serves(
    behind, tracking_uri
) -> None:
    import pandas as pd
    from fastapi.testclient import TestClient
    from sklearn.linear_model import LogisticRegression

    from loopml.serving import create_app

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    fitted = LogisticRegression().fit(frame, frame["a"] + frame["b"] > 0)
    mlflow.set_experiment("registry")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(fitted, name="model", registered_model_name="churn")
    second = mlflow.register_model(f"runs:/{run.info.run_id}/model", "churn")
    assert (second.version, second.status) == ("2", "READY")
    client = MlflowClient()
    client.set_registered_model_alias("churn", "challenger", "2")
    for uri in ("models:/churn@challenger", "models:/churn/1"):
        loaded = mlflow.pyfunc.load_model(uri)
        assert list(loaded.predict(frame.head(8))) == list(fitted.predict(frame.head(8)))
    assert client.get_registered_model("churn").aliases == {"challenger": "2"}
    assert [v.version for v in client.search_model_versions("name='churn'")] == ["1", "2"]
    with pytest.raises(MlflowException) as unknown:
        client.get_model_version_by_alias("churn", "nothing")
    assert unknown.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as twice:
        client.create_registered_model("churn")
    assert twice.value.error_code == "RESOURCE_ALREADY_EXISTS"

    version = loopml.models.get_version("churn@challenger", workspace=behind)
    assert (version.flavor, version.run_id) == ("mlflow", run.info.run_id)
    event = loopml.models.history("churn", workspace=behind)[-1]
    assert (event.action, event.alias, event.to_version) == ("alias", "challenger", 2)
    model = loopml.models.load("churn@1", workspace=behind)
    assert list(model.predict(frame.head(8))) == list(fitted.predict(frame.head(8)))
    with TestClient(create_app("churn", "challenger", workspace=behind)) as served:
        answer = served.post("/predict", json={"a": 1.0, "b": 1.0, "c": 0.0})
    assert answer.status_code == 200, answer.text


def test_a_protected_alias_needs_an_admin_token_from_mlflow_too(behind, tracking_uri, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    admin = tokens_repo.create_token(behind.metadata, "root", "admin").token
    editor = tokens_repo.create_token(behind.metadata, "ci", "editor").token
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", editor)
    x = np.random.default_rng(2).normal(size=(40, 2))
    mlflow.set_experiment("protected")
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression().fit(x, x[:, 0] > 0), name="model", registered_model_name="risk"
        )
    client = MlflowClient()
    client.set_registered_model_alias("risk", "staging", "1")
    with pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias("risk", "champion", "1")
    assert refused.value.error_code == "PERMISSION_DENIED"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", admin)
    client.set_registered_model_alias("risk", "champion", "1")
    event = loopml.models.history("risk", workspace=behind)[-1]
    assert (event.alias, event.actor) == ("champion", "root")


def test_a_metric_history_pages_in_order(tracking_uri) -> None:
    mlflow.set_experiment("long")
    with mlflow.start_run() as run:
        mlflow.log_metrics({"loss": 1.0}, step=0)
        for step in range(1, 25):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    url = f"{tracking_uri}/api/2.0/mlflow/metrics/get-history"
    steps, token = [], None
    while True:
        query = {"run_id": run.info.run_id, "metric_key": "loss", "max_results": 10}
        answer = httpx.get(url, params={**query, **({"page_token": token} if token else {})})
        page = answer.json()
        steps += [int(m["step"]) for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == list(range(25))
