"""Real servers for the serving tests: uvicorn on 127.0.0.1 (a free port) in a thread, serving
a model registered in the test's SQLite workspace.

- ``serve(name)``: start a server for NAME@champion and get its base URL; stopped afterwards.
- ``server``: an httpx client of a server for "churn", a LogisticRegression on two float
  columns ``a`` and ``b`` with a contract (a in [-10, 10], neither nullable).
- ``endpoint``: the same "churn" in ``any_workspace`` (SQLite, PostgreSQL, a loopml server),
  for the tests of what the store keeps: deployments, refusals, alerts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.serving import create_app

CONTRACT = {
    "columns": {
        "a": {"type": "float", "nullable": False, "min": -10, "max": 10},
        "b": {"type": "float", "nullable": False},
    }
}


@pytest.fixture
def serve(sqlite_workspace) -> Iterator[Callable[[str], str]]:
    """Start a server for NAME@champion; returns its base URL ("http://127.0.0.1:PORT")."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(name: str) -> str:
        config = uvicorn.Config(create_app(name), host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(10)


def _register_churn() -> str:
    """Register "churn" (champion = version 1) in the current workspace."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    model = LogisticRegression().fit(x, x["a"] + x["b"] > 0)
    version = loopml.models.register("churn", model, contract=CONTRACT, card=False)
    loopml.models.set_alias("churn", "champion", version.version)
    return "churn"


@pytest.fixture
def churn(sqlite_workspace) -> str:
    """Register "churn" (champion = version 1) and return its name."""
    return _register_churn()


@pytest.fixture
def endpoint(any_workspace) -> str:
    """Register "churn" (champion = version 1) in each metadata store; returns its name."""
    return _register_churn()


@pytest.fixture
def server(serve, churn: str) -> Iterator[httpx.Client]:
    """An httpx client of a running server for "churn"."""
    with httpx.Client(base_url=serve(churn), timeout=10) as client:
        yield client
