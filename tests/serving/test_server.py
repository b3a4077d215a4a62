"""The server on a real uvicorn on 127.0.0.1, spoken to with httpx: three dialects, contract
checks answered with 422 and a list of problems, every prediction logged before the answer."""

from __future__ import annotations

import re
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.events import read_events
from loopml.serving import create_app
from loopml.workspace import use_workspace
from tests.conftest import make_workspace
from tests.serving.conftest import CONTRACT

ROWS = [{"a": 0.5, "b": 1.0}, {"a": -1.0, "b": 0.2}, {"a": 2.0, "b": -3.0}]


def test_predict_answers_with_ids_and_logs_before_answering(server: httpx.Client) -> None:
    answer = server.post("/predict", json={"records": ROWS})
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == answer.headers["X-Request-Id"] and body["model"] == "churn@1"
    scores = [p["score"] for p in body["predictions"]]
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    assert [p["label"] for p in body["predictions"]] == [s >= 0.5 for s in scores]
    logged = read_events("predictions")
    assert set(logged["id"]) == {p["id"] for p in body["predictions"]}
    first = logged.set_index("id").loc[body["predictions"][0]["id"]]
    assert (first["input.a"], first["input.b"]) == (ROWS[0]["a"], ROWS[0]["b"])
    assert first["output.score"] == scores[0] and first["version"] == 1
    assert first["status"] == "ok" and first["role"] == "champion"
    single = server.post("/predict", json=ROWS[0]).json()
    assert single["predictions"][0]["score"] == scores[0]


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[r["a"], r["b"]] for r in ROWS]}},
        {"dataframe_records": ROWS},
        {"instances": ROWS},
        {"inputs": {"a": [r["a"] for r in ROWS], "b": [r["b"] for r in ROWS]}},
    ],
)
def test_mlflow_scoring_protocol(server: httpx.Client, body: dict) -> None:
    expected = [p["score"] for p in server.post("/predict", json=ROWS).json()["predictions"]]
    answer = server.post("/invocations", json=body)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == pytest.approx(expected)


def test_open_inference_protocol_v2(server: httpx.Client) -> None:
    assert server.get("/v2/health/live").json() == {"live": True}
    assert server.get("/v2/health/ready").json() == {"ready": True}
    metadata = server.get("/v2/models/churn").json()
    assert metadata["name"] == "churn" and [i["name"] for i in metadata["inputs"]] == ["a", "b"]
    request = {
        "inputs": [
            {"name": "a", "shape": [3], "datatype": "FP64", "data": [r["a"] for r in ROWS]},
            {"name": "b", "shape": [3, 1], "datatype": "FP64", "data": [[r["b"]] for r in ROWS]},
        ]
    }
    answer = server.post("/v2/models/churn/infer", json=request).json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["score"]["shape"] == [3] and outputs["score"]["datatype"] == "FP64"
    assert answer["model_version"] == "1"
    assert server.post("/v2/models/other/infer", json=request).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/predict", {"records": [{"a": 100.0, "b": 1.0}]}, "column a"),
        ("/predict", {"records": [{"a": 1.0}]}, "column b"),
        ("/predict", {"records": []}, "records"),
        ("/predict", {"records": [1, 2]}, "records[0]"),
        (
            "/invocations",
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}},
            "dataframe_split.data[0]",
        ),
        ("/invocations", {"instances": ROWS, "inputs": {}}, "body"),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0]}]},
            "inputs[0]",
        ),
    ],
)
def test_bad_requests_get_422_with_their_problems(server, path, body, location) -> None:
    answer = server.post(path, json=body)
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert problems and problems[0]["location"] == location and problems[0]["message"]
    rejected = read_events("predictions")
    assert list(rejected["status"]) == ["rejected"]
    assert rejected.loc[0, "id"] == answer.headers["X-Request-Id"]


def test_a_body_that_is_not_json_is_a_422(server: httpx.Client) -> None:
    answer = server.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422 and "not valid JSON" in answer.json()["problems"][0]["message"]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        (
            "/predict",
            b'{"records": [{"a": 1.0, "b": 1.0, "note": "\\udc00"}]}',
            "body.records[0].note",
        ),
        (
            "/invocations",
            b'{"dataframe_records": [{"a": 1.0, "b": "\\ud800"}]}',
            "body.dataframe_records[0].b",
        ),
        (
            "/v2/models/churn/infer",
            b'{"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["\\ud800"]}]}',
            "body.inputs[0].data[0]",
        ),
    ],
)
def test_text_that_is_not_valid_unicode_is_a_422_and_logged(server, path, body, location) -> None:
    answer = server.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["location"] == location
    assert list(read_events("predictions")["status"]) == ["rejected"]


def test_only_json_is_accepted(server: httpx.Client) -> None:
    answer = server.post(
        "/predict", content=b'{"records": []}', headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 415 and answer.json()["problems"][0]["location"] == "content-type"
    typed = server.post(
        "/predict", json=ROWS, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert typed.status_code == 200


def test_prometheus_metrics(server: httpx.Client) -> None:
    server.post("/predict", json=ROWS)
    server.post("/predict", json={"records": [{"a": 99.0, "b": 0.0}]})
    text = server.get("/metrics").text
    assert (
        'loopml_requests_total{dialect="predict",endpoint="churn",role="champion",status="ok",'
        'version="1"} 1.0' in text
    )
    assert 'status="rejected"' in text
    assert "loopml_request_seconds_bucket" in text and "loopml_prediction_score_bucket" in text


@pytest.mark.slow
def test_loopml_serve_runs_a_server_process(sqlite_workspace, tmp_path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    loopml.models.register("churn", LogisticRegression().fit(x, x["a"] > 0), card=False)
    loopml.models.set_alias("churn", "champion", 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "loopml"), "serve", "churn", "--port", str(port)]
    env = {**os.environ, "LOOPML_HOME": str(sqlite_workspace.home)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None:
            assert time.monotonic() < deadline and process.poll() is None
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=ROWS, timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 200
        docs = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
        assert {"/predict", "/invocations", "/v2/models/{model}/infer"} <= set(docs["paths"])
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    ids = {p["id"] for p in answer.json()["predictions"]}
    assert ids <= set(read_events("predictions")["id"])


def test_a_request_of_many_rows_is_logged_row_by_row(server: httpx.Client) -> None:
    rng = np.random.default_rng(2)
    rows = [{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(40, 2))]
    answer = server.post("/predict", json={"records": rows}).json()
    logged = read_events("predictions").set_index("id")
    ids = [p["id"] for p in answer["predictions"]]
    assert len(logged) == 40 and set(logged.index) == set(ids)
    np.testing.assert_array_equal(logged.loc[ids, "input.a"], [r["a"] for r in rows])
    np.testing.assert_array_equal(
        logged.loc[ids, "output.score"], [p["score"] for p in answer["predictions"]]
    )
    assert set(logged["request_id"]) == {answer["id"]}


def test_the_api_docs_work_offline(server: httpx.Client) -> None:
    page = server.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    scripts = re.findall(r"""url: ?['"]([^'"]+)['"]|['"](/[^'"]+\.(?:js|css))['"]""", page.text)
    assert not [s for s in sources if s.startswith("http")]  # nothing from a CDN
    assert "cdn." not in page.text
    local = {found for pair in scripts for found in pair if found} | {
        s for s in sources if s.startswith("/")
    }
    assert any(path.endswith(".js") for path in local)
    for path in local:
        assert server.get(path).status_code == 200, path


def test_requests_beyond_the_limits_are_refused_and_logged(tmp_path) -> None:
    limited = make_workspace(
        tmp_path / "limited", serve_max_rows=5, serve_max_columns=4, serve_max_body_bytes=2048
    )
    x = pd.DataFrame({"a": np.arange(10.0) - 5, "b": np.zeros(10)})
    model = LogisticRegression().fit(x, x["a"] > 0)
    with use_workspace(limited):
        loopml.models.register("churn", model, contract=CONTRACT, card=False)
        loopml.models.set_alias("churn", "champion", 1)
    rows = [{"a": 1.0, "b": 0.0}] * 6
    wide = [{"a": 1.0, "b": 0.0, "x0": 0, "x1": 1, "x2": 2}]
    with TestClient(create_app("churn", workspace=limited)) as client:
        assert client.post("/predict", json={"records": rows[:5]}).status_code == 200
        many = client.post("/predict", json={"records": rows})
        assert many.status_code == 413 and many.json()["problems"][0]["location"] == "rows"
        answer = client.post("/predict", json={"records": wide})
        assert answer.status_code == 422 and answer.json()["problems"][0]["location"] == "columns"
        big = client.post("/predict", json={"records": [{**rows[0], "note": "x" * 3000}]})
        assert big.status_code == 413 and big.json()["problems"][0]["location"] == "body"
        labels = client.post("/feedback", json=[{"id": str(i), "label": 1} for i in range(6)])
        assert labels.status_code == 413
    statuses = read_events("predictions", workspace=limited)["status"].tolist()
    assert statuses.count("ok") == 5 and statuses.count("rejected") == 3


def _churn_workspace(folder, **settings):
    made = make_workspace(folder, **settings)
    x = pd.DataFrame({"a": np.arange(10.0) - 5, "b": np.zeros(10)})
    model = LogisticRegression().fit(x, x["a"] > 0)
    with use_workspace(made):
        loopml.models.register("churn", model, contract=CONTRACT, card=False)
        loopml.models.set_alias("churn", "champion", 1)
    return made


@pytest.mark.parametrize("extra", ["drop", "refuse", "log"])
def test_columns_the_version_does_not_know_are_dropped_refused_or_logged(tmp_path, extra):
    made = _churn_workspace(tmp_path / extra, serve_extra_columns=extra)
    wide = {"records": [{"a": 1.0, "b": 0.0, "note": "x" * 100, "x1": 3}]}
    with TestClient(create_app("churn", workspace=made)) as client:
        answer = client.post("/predict", json=wide)
    logged = read_events("predictions", workspace=made)
    if extra == "refuse":
        assert answer.status_code == 422
        assert answer.json()["problems"][0]["rule"] == "extra_column"
        assert "note, x1" in answer.json()["problems"][0]["message"]
        assert list(logged["status"]) == ["rejected"]
        return
    assert answer.status_code == 200
    kept = {c for c in logged.columns if c.startswith("input.")}
    if extra == "drop":  # the default: what the version does not know is not kept
        assert kept == {"input.a", "input.b"}
    else:
        assert kept == {"input.a", "input.b", "input.note", "input.x1"}


def test_a_body_that_arrives_too_slowly_gets_408(tmp_path) -> None:
    import asyncio

    made = _churn_workspace(tmp_path / "slow", serve_read_timeout=0.2)

    async def slowly():
        yield b'{"records": [{"a": 1.0, '
        await asyncio.sleep(1.0)
        yield b'"b": 0.0}]}'

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app("churn", workspace=made))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                "/predict", content=slowly(), headers={"Content-Type": "application/json"}
            )

    answer = asyncio.run(send())
    assert answer.status_code == 408
    assert "serve_read_timeout" in answer.json()["problems"][0]["message"]
