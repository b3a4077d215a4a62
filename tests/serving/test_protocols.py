"""The Open Inference Protocol V2 endpoints spoken to by the clients users have: NVIDIA's
``tritonclient.http`` and the ``open-inference-openapi`` client generated from the protocol's
OpenAPI definition, against a real server. Scores agree with /predict for the same rows, and
a request the server cannot read gets a 4xx with a machine-readable body, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from open_inference.openapi.client import InferenceRequest, OpenInferenceClient
from open_inference.openapi.core.api_error import ApiError
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from tritonclient.utils import InferenceServerException

import loopml

# Values a float32 holds exactly, so FP32 and FP64 tensors carry the same rows.
A = [0.5, -1.0, 2.0, 0.25]
B = [1.0, 0.125, -3.0, 4.5]
ROWS = [{"a": a, "b": b} for a, b in zip(A, B, strict=True)]
PLANS = [{"plan": "pro", "a": 0.5}, {"plan": "basic", "a": 0.5}, {"plan": "pro", "a": -2.0}]


def predicted(server: httpx.Client, rows: list[dict]) -> tuple[list[float], list[str]]:
    """/predict's scores and labels (as the V2 label tensor spells them) for ROWS."""
    answer = server.post("/predict", json={"records": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    return [p["score"] for p in predictions], [str(p["label"]) for p in predictions]


@pytest.fixture
def tritonc(server: httpx.Client) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.base_url.netloc.decode(), network_timeout=10)
    yield client
    client.close()


@pytest.fixture
def oip(server: httpx.Client) -> OpenInferenceClient:
    return OpenInferenceClient(base_url=str(server.base_url), timeout=10)


def tensor(name: str, values: np.ndarray, datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=False)
    return tensor


def outputs() -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(n, binary_data=False) for n in ("score", "label")]


# tritonclient.http


def test_triton_client_health_and_metadata(tritonc: triton.InferenceServerClient) -> None:
    assert tritonc.is_server_live() and tritonc.is_server_ready()
    metadata = tritonc.get_model_metadata("churn")
    assert metadata["name"] == "churn" and metadata["versions"] == ["1"]
    assert [i["name"] for i in metadata["inputs"]] == ["a", "b"]
    assert {o["name"] for o in metadata["outputs"]} == {"score", "label"}


@pytest.mark.parametrize(("datatype", "dtype"), [("FP64", np.float64), ("FP32", np.float32)])
def test_triton_client_infers_what_predict_predicts(server, tritonc, datatype, dtype) -> None:
    inputs = [
        tensor("a", np.array(A, dtype=dtype), datatype),
        tensor("b", np.array(B, dtype=dtype).reshape(-1, 1), datatype),  # shape [4, 1]
    ]
    result = tritonc.infer("churn", inputs, outputs=outputs())
    scores, labels = predicted(server, ROWS)
    assert result.as_numpy("score").tolist() == scores
    assert result.as_numpy("label").tolist() == labels
    assert result.get_response()["model_version"] == "1"


def test_triton_client_sends_strings_as_bytes(serve, plans: str) -> None:
    url = serve(plans)
    client = triton.InferenceServerClient(url=url.removeprefix("http://"), network_timeout=10)
    try:
        inputs = [
            tensor("plan", np.array([r["plan"] for r in PLANS], dtype=object), "BYTES"),
            tensor("a", np.array([r["a"] for r in PLANS]), "FP64"),
        ]
        result = client.infer(plans, inputs, outputs=outputs())
    finally:
        client.close()
    with httpx.Client(base_url=url, timeout=10) as server:
        scores, labels = predicted(server, PLANS)
    assert result.as_numpy("score").tolist() == scores
    assert result.as_numpy("label").tolist() == labels
    assert scores[0] != scores[1]  # the plan is read, not dropped


def triton_error(call) -> tuple[int, str]:
    """The status and the message of the error a tritonclient call raises: the answer's
    "error", which names each problem's location."""
    with pytest.raises(InferenceServerException) as raised:
        call()
    error = raised.value
    status = int(error.status())
    assert 400 <= status < 500, error
    return status, error.message()


def test_triton_client_unknown_model_is_a_404(tritonc: triton.InferenceServerClient) -> None:
    inputs = [tensor("a", np.array(A), "FP64"), tensor("b", np.array(B), "FP64")]
    for call in (
        lambda: tritonc.get_model_metadata("nope"),
        lambda: tritonc.infer("nope", inputs, outputs=outputs()),
    ):
        status, _ = triton_error(call)
        assert status == 404
    with pytest.raises(InferenceServerException, match="Unknown model 'nope'"):
        tritonc.infer("nope", inputs)


def bad_shape() -> list[triton.InferInput]:
    a = tensor("a", np.array(A), "FP64")
    a.set_shape([len(A) + 1])  # says 5 rows, holds 4
    return [a, tensor("b", np.array(B), "FP64")]


def two_columns() -> list[triton.InferInput]:
    both = np.array([A, B]).T  # shape [4, 2]: two columns in one tensor
    return [tensor("a", both, "FP64"), tensor("b", np.array(B), "FP64")]


def strings_for_a_float() -> list[triton.InferInput]:
    return [
        tensor("a", np.array(["x"] * len(A), dtype=object), "BYTES"),
        tensor("b", np.array(B), "FP64"),
    ]


def only_a() -> list[triton.InferInput]:
    return [tensor("a", np.array(A), "FP64")]


def binary_data() -> list[triton.InferInput]:
    a = triton.InferInput("a", [len(A)], "FP64")
    a.set_data_from_numpy(np.array(A))  # tritonclient's default: the binary extension
    return [a, tensor("b", np.array(B), "FP64")]


@pytest.mark.parametrize(
    ("inputs", "location", "words"),
    [
        (bad_shape, "inputs[0]", "does not match 4 values"),
        (two_columns, "inputs[0]", "one column per tensor"),
        (strings_for_a_float, "column a", "expected float"),
        (only_a, "column b", "missing"),
        (binary_data, "body", "binary_data=False"),
    ],
)
def test_triton_client_bad_requests_get_a_4xx_with_problems(
    tritonc, inputs, location, words
) -> None:
    status, message = triton_error(lambda: tritonc.infer("churn", inputs(), outputs=outputs()))
    assert status == 422
    assert message.startswith(f"{location}: ") and words in message


def test_triton_client_shows_the_problem(tritonc: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        tritonc.infer("churn", only_a(), outputs=outputs())
    message = raised.value.message()
    assert "column b" in message and "decoding the response" not in message


def test_triton_client_metadata_gives_each_input_its_datatype(tritonc) -> None:
    metadata = tritonc.get_model_metadata("churn")
    assert [i["datatype"] for i in metadata["inputs"]] == ["FP64", "FP64"]


def test_triton_client_gets_its_request_id_back(tritonc: triton.InferenceServerClient) -> None:
    inputs = [tensor("a", np.array(A), "FP64"), tensor("b", np.array(B), "FP64")]
    result = tritonc.infer("churn", inputs, outputs=outputs(), request_id="mine-1")
    assert result.get_response()["id"] == "mine-1"


# open-inference-openapi


def test_open_inference_client_health_metadata_and_infer(server, oip) -> None:
    oip.check_server_liveness()  # raises on anything but a 2xx
    oip.check_server_readiness()
    metadata = oip.read_model_metadata("churn")
    assert metadata.name == "churn" and metadata.versions == ["1"]
    assert [i.name for i in metadata.inputs] == ["a", "b"]
    request = InferenceRequest(
        inputs=[
            {"name": "a", "shape": [len(A)], "datatype": "FP64", "data": A},
            {"name": "b", "shape": [len(B), 1], "datatype": "FP32", "data": [[b] for b in B]},
        ]
    )
    answer = oip.model_infer("churn", request=request)
    outputs = {o.name: o for o in answer.outputs}
    scores, labels = predicted(server, ROWS)
    assert outputs["score"].datatype == "FP64" and outputs["score"].shape == [len(A)]
    assert outputs["score"].data.__root__ == scores
    assert outputs["label"].data.__root__ == labels
    assert answer.model_name == "churn" and answer.model_version == "1"


def test_open_inference_client_unknown_model_is_a_404(oip: OpenInferenceClient) -> None:
    request = InferenceRequest(
        inputs=[{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    )
    for call in (
        lambda: oip.read_model_metadata("nope"),
        lambda: oip.model_infer("nope", request=request),
    ):
        with pytest.raises(ApiError) as raised:
            call()
        assert raised.value.status_code == 404 and "nope" in raised.value.body["error"]


@pytest.mark.parametrize(
    ("inputs", "location", "words"),
    [
        (
            [
                {"name": "a", "shape": [3], "datatype": "FP64", "data": A},
                {"name": "b", "shape": [4], "datatype": "FP64", "data": B},
            ],
            "inputs[0]",
            "does not match 4 values",
        ),
        (
            [
                {"name": "a", "shape": [4], "datatype": "FP64", "data": ["x"] * 4},
                {"name": "b", "shape": [4], "datatype": "FP64", "data": B},
            ],
            "inputs[0]",
            "FP64 holds finite numbers",
        ),
        (
            [
                {"name": "a", "shape": [4], "datatype": "FP99", "data": A},
                {"name": "b", "shape": [4], "datatype": "FP64", "data": B},
            ],
            "inputs[0]",
            "datatype",
        ),
        (
            [
                {"name": "a", "shape": [4], "datatype": "INT8", "data": [1, 2, 300, 4]},
                {"name": "b", "shape": [4], "datatype": "FP64", "data": B},
            ],
            "inputs[0]",
            "INT8 holds integers in its range",
        ),
        (
            [
                {"name": "a", "shape": [4], "datatype": "FP64", "data": A},
                {"name": "a", "shape": [4], "datatype": "FP64", "data": B},
            ],
            "inputs[1]",
            "also inputs[0]",
        ),
        ([{"name": "a", "shape": [4], "datatype": "FP64", "data": A}], "column b", "missing"),
        (
            [
                {"name": "a", "shape": [0], "datatype": "FP64", "data": []},
                {"name": "b", "shape": [0], "datatype": "FP64", "data": []},
            ],
            "inputs[0]",
            "no rows",
        ),
    ],
)
def test_open_inference_client_bad_requests_get_a_4xx_with_problems(
    oip, inputs, location, words
) -> None:
    with pytest.raises(ApiError) as raised:
        oip.model_infer("churn", request=InferenceRequest(inputs=inputs))
    assert raised.value.status_code == 422
    first = raised.value.body["problems"][0]
    assert first["location"] == location and words in first["message"]


# the model with a string column


@pytest.fixture
def plans(sqlite_workspace) -> str:
    """Register "plans": a Pipeline one-hot encoding a string column, with a contract."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"plan": rng.choice(["basic", "pro"], 200), "a": rng.normal(size=200)})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["plan"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(x, (x["plan"] == "pro") ^ (x["a"] > 0))
    contract = {
        "columns": {
            "plan": {"type": "string", "nullable": False, "categories": ["basic", "pro"]},
            "a": {"type": "float", "nullable": False},
        }
    }
    version = loopml.models.register("plans", model, contract=contract, card=False)
    loopml.models.set_alias("plans", "champion", version.version)
    return "plans"


def test_a_regressor_answers_scores_without_a_label_in_every_dialect(serve) -> None:
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": A * 5, "b": B * 5})
    model = LinearRegression().fit(frame, 3 * frame["a"] - frame["b"])
    loopml.models.register("demand", model, card=False)
    loopml.models.set_alias("demand", "champion", 1)
    with httpx.Client(base_url=serve("demand"), timeout=10) as client:
        records = client.post("/predict", json={"records": ROWS}).json()["predictions"]
        assert all(set(p) == {"id", "score"} for p in records)
        expected = (3 * np.array(A) - np.array(B)).tolist()
        assert [p["score"] for p in records] == pytest.approx(expected)
        mlflow = client.post("/invocations", json={"dataframe_records": ROWS}).json()
        assert mlflow["predictions"] == pytest.approx(expected)
        metadata = client.get("/v2/models/demand").json()
        assert [o["name"] for o in metadata["outputs"]] == ["score"]
        tritonc = triton.InferenceServerClient(url=client.base_url.netloc.decode())
        inputs = [tensor("a", np.array(A), "FP64"), tensor("b", np.array(B), "FP64")]
        result = tritonc.infer("demand", inputs)
        assert result.as_numpy("score").tolist() == pytest.approx(expected)
        assert result.as_numpy("label") is None
        tritonc.close()
