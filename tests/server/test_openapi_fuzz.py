"""Schemathesis fuzzes every operation of loopml server's own /openapi.json on a real uvicorn
(positive and negative cases, as tests/serving/test_openapi_fuzz.py does for model servers):
whatever it sends, the server never answers with a 5xx."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

import loopml
from tests.conftest import make_workspace, running_server

FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    ws = make_workspace(Path(tmp_path_factory.mktemp("server")))
    with loopml.start_run(experiment="e", params={"a": 1}, workspace=ws) as run:
        run.log_metric("loss", 0.5)
    with running_server(ws) as url:
        yield url, run.id
    ws.close()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error(server, mode: GenerationMode) -> None:
    url, run_id = server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures, answered = {}, Counter()
    for operation in operations:
        fixed = {"run_id": run_id} if "{run_id}" in operation.path else None
        strategy = operation.as_strategy(mode, path_parameters=fixed)

        @FUZZ
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(timeout=10)
            answered[response.status_code // 100] += 1
            assert response.status_code < 500, (
                f"{response.status_code}: {response.text[:300]}\n{case.as_curl_command()}"
            )

        try:
            fuzz()
        except AssertionError as error:
            failures[operation.label] = str(error)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert answered[2] > 0 or mode is GenerationMode.NEGATIVE
