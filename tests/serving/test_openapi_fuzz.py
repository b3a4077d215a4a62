"""Schemathesis fuzzes every operation of the server's own /openapi.json on a real uvicorn:
whatever it sends, fitting the spec or not, the server never answers with a 5xx, and the
dialects answer a request they cannot read with a 4xx listing its problems. The spec names no
model's columns, so a second test fuzzes the values of the served model's own columns, which
reach the contract check and the model.

The cases come from each operation's ``as_strategy()`` under plain Hypothesis:
``schemathesis.pytest.from_fixture`` (the way to fuzz a server a fixture starts) fails on
pytest 9.2, which no longer has ``Node._nodeid``.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sklearn.linear_model import LogisticRegression

import loopml

DIALECTS = {"/predict", "/invocations", "/v2/models/{model}/infer"}
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # a failure shows its case; shrinking takes minutes
)


def test_the_spec_describes_what_each_dialect_reads(server: httpx.Client) -> None:
    """Without these, schemathesis would send bodies at random and never reach the parsers."""
    paths = server.get("/openapi.json").json()["paths"]
    for path in DIALECTS:
        body = paths[path]["post"]["requestBody"]
        assert body["required"] and body["content"]["application/json"]["schema"], path
    v2 = paths["/v2/models/{model}/infer"]["post"]["requestBody"]["content"]
    tensor = v2["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert {"FP32", "FP64", "BYTES"} <= set(tensor["properties"]["datatype"]["enum"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(server: httpx.Client, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} >= DIALECTS
    failures, answered = {}, Counter()
    for operation in operations:
        # An unknown model name is a 404 before any parsing: infer with the served one's.
        fixed = {"model": "churn"} if operation.path in DIALECTS else None
        strategy = operation.as_strategy(mode, path_parameters=fixed)

        @FUZZ
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(timeout=10)
            answered[case.path] += 1
            assert response.status_code < 500, (
                f"{response.status_code}: {response.text[:300]}\n{case.as_curl_command()}"
            )
            if case.path in DIALECTS and response.status_code == 422:
                problems = response.json()["problems"]
                assert problems and all(p["location"] and p["message"] for p in problems)

        try:
            fuzz()
        except AssertionError as error:
            failures[operation.label] = str(error)
        except Unsatisfiable:  # nothing in the operation can be made to break its spec
            assert mode is GenerationMode.NEGATIVE and operation.path not in DIALECTS
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert all(answered[path] >= 20 for path in DIALECTS), answered


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and the infinities too: Python's JSON reads and writes them
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
# Rows the contract accepts: a a number in [-10, 10], b any finite number.
VALID = st.fixed_dictionaries(
    {
        "a": st.floats(-10, 10) | st.integers(-10, 10),
        "b": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63 - 1),
    }
)
ANY = st.fixed_dictionaries({"a": JSON_VALUES | st.floats(-10, 10), "b": JSON_VALUES})


def _datatype(values: list) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, str) for v in values):
        return "BYTES"
    return "FP64"


def _bodies(rows: list[dict]) -> dict[str, object]:
    columns = {name: [row[name] for row in rows] for name in ("a", "b")}
    tensors = [
        {"name": name, "shape": [len(rows)], "datatype": _datatype(values), "data": values}
        for name, values in columns.items()
    ]
    split = {"columns": ["a", "b"], "data": [[row["a"], row["b"]] for row in rows]}
    return {
        "/predict": {"records": rows},
        "/invocations": {"dataframe_split": split},
        "/v2/models/churn/infer": {"inputs": tensors},
    }


def _scores(path: str, answer: dict) -> list[float]:
    if path == "/predict":
        return [p["score"] for p in answer["predictions"]]
    if path == "/invocations":
        return answer["predictions"]
    return next(o["data"] for o in answer["outputs"] if o["name"] == "score")


@FUZZ
@given(rows=st.lists(VALID, min_size=1, max_size=4) | st.lists(ANY, min_size=1, max_size=4))
# Integers in float columns: JSON dialects read them as integers, V2's FP64 as floats.
@example(rows=[{"a": -7, "b": -10}, {"a": -10, "b": 9}, {"a": 1, "b": -2261345162318684064}])
# Floats beside an integer that no 64-bit float holds exactly.
@example(rows=[{"a": 2.5, "b": 4.25}, {"a": 1, "b": -3227605935269811519}])
# Records that name the columns in another order than the model reads them.
@example(
    rows=[
        {"b": 42700, "a": -10},
        {"a": -8.816126623104669, "b": -1325489171},
        {"b": -234689405, "a": -9},
        {"a": -6, "b": -2.6144674728806403e-133},
    ]
)
def test_any_values_in_the_models_columns_get_scores_or_problems(server, rows) -> None:
    """Rows the contract accepts get the same scores in every dialect, to the last bit (one
    request at a time, so adaptive batching merges none); any others get a 422 listing their
    problems."""
    valid = all(_valid(row) for row in rows)
    scores = {}
    for path, body in _bodies(rows).items():
        content = json.dumps(body)  # allow_nan: NaN and Infinity as Python writes them
        answer = server.post(path, content=content, headers={"content-type": "application/json"})
        said = f"{path} {content} -> {answer.status_code} {answer.text[:300]}"
        assert answer.status_code in ((200,) if valid else (200, 422)), said
        if answer.status_code == 422:
            assert answer.json()["problems"], said
        else:
            scores[path] = _scores(path, answer.json())
            assert len(scores[path]) == len(rows) and all(0 <= s <= 1 for s in scores[path])
    if valid:
        first, *others = scores.values()
        assert all(other == first for other in others), scores


def _valid(row: dict) -> bool:
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    a, b = row["a"], row["b"]
    return number(a) and -10 <= a <= 10 and number(b) and math.isfinite(b)


# Bad requests that still get a 5xx: each needs a change outside the payload readers.


def test_a_body_nested_too_deep_is_a_422(server: httpx.Client) -> None:
    content = "[" * 100_000 + "]" * 100_000
    for path in ("/predict", "/invocations", "/v2/models/churn/infer"):
        answer = server.post(path, content=content, headers={"content-type": "application/json"})
        assert answer.status_code == 422 and answer.json()["problems"], path


def test_a_model_without_contract_answers_bad_rows_with_a_422(serve, sqlite_workspace) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    version = loopml.models.register("bare", LogisticRegression().fit(x, x["a"] > 0), card=False)
    loopml.models.set_alias("bare", "champion", version.version)
    with httpx.Client(base_url=serve("bare"), timeout=10) as bare:
        assert bare.post("/predict", json=[{"a": 1.0, "b": 2.0}]).status_code == 200
        for rows in ([{"a": 1.0}], [{"a": "x", "b": 2.0}], [{"a": None, "b": 2.0}]):
            answer = bare.post("/predict", json=rows)
            assert answer.status_code == 422 and answer.json()["problems"], rows


def test_the_spec_describes_the_errors_the_feedback_and_the_metrics(server: httpx.Client) -> None:
    paths = server.get("/openapi.json").json()["paths"]
    for path in DIALECTS:
        answers = paths[path]["post"]["responses"]
        assert {"413", "415", "422", "500"} <= set(answers), path
        problems = answers["422"]["content"]["application/json"]["schema"]["properties"]
        assert "problems" in problems
    assert "404" in paths["/v2/models/{model}/infer"]["post"]["responses"]
    assert "404" in paths["/v2/models/{model}"]["get"]["responses"]
    feedback = paths["/feedback"]["post"]
    assert feedback["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"413", "415", "422"} <= set(feedback["responses"])
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "application/json" not in metrics and any(kind.startswith("text/") for kind in metrics)
