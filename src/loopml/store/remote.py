"""The metadata store of a workspace served by a loopml server: operations over HTTP.

A ``RemoteMetadataStore`` performs each operation with one request to the server, which runs
it in one transaction of its own store. Writes carry an idempotency key, so they are retried
with backoff while the server is unreachable or overloaded, and done once however often they
are sent. An error the server reports is raised again here as the same loopml error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from loopml import errors
from loopml.store.operations import Operation
from loopml.store.values import plain_value

API = "/api/v1"
RETRIED_STATUS = {502, 503, 504}
log = logging.getLogger("loopml.store")


class RemoteMetadataStore:
    """Metadata operations sent to a loopml server (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retry_seconds: float = 60.0,
        timeout: float = 60.0,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.dialect = "http"
        self.retry_seconds = retry_seconds
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._client: Any = None
        self._pid = -1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteMetadataStore({self.url!r})"

    def ensure_schema(self) -> None:
        """The server keeps its own schema current: nothing to do here."""

    def dispose(self, close: bool = True) -> None:
        """Close pooled connections (close=False after fork: forget the parent's)."""
        with self._lock:
            if self._client is not None and close:
                self._client.close()
            self._client = None

    def perform(self, operation: Operation, arguments: dict[str, Any]) -> Any:
        """Send one operation and return its result."""
        method, path = operation.route.method, operation.route.path
        in_path = operation.route.path_fields
        for name in in_path:  # all quoted, so no client or proxy reads '..' in a name
            quoted = urllib.parse.quote(str(arguments[name]), safe="")
            path = path.replace(f"{{{name}:path}}", quoted).replace(f"{{{name}}}", quoted)
        rest = {k: v for k, v in arguments.items() if k not in in_path}
        request: dict[str, Any] = {"headers": dict(self._headers)}
        if method == "GET":
            request["params"] = {k: v for k, v in rest.items() if v is not None}
        else:
            model = operation.arguments.model_validate(arguments)
            request["content"] = model.model_dump_json(include=set(rest), fallback=plain_value)
            request["headers"]["Content-Type"] = "application/json"
            request["headers"]["Idempotency-Key"] = uuid.uuid4().hex
        answer = self._send(method, self.url + API + path, lambda: request, operation.name)
        return operation.result.validate_json(answer)

    def _send(
        self,
        method: str,
        url: str,
        request: Callable[[], dict[str, Any]],
        name: str,
        receive: Callable[[Any], Any] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> Any:
        """One request, retried with backoff while the server is unreachable or overloaded;
        request() gives its arguments for each attempt, receive(response) reads the answer
        (its bytes by default). A status in expected is an answer; another is raised."""
        import httpx

        deadline = time.monotonic() + self.retry_seconds
        pause = 0.1
        while True:
            try:
                with self._http().stream(method, url, **request()) as response:
                    if response.status_code in expected:
                        return receive(response) if receive else response.read()
                    response.read()
                    if response.status_code not in RETRIED_STATUS:
                        raise _error(response, name)
                    problem = f"HTTP {response.status_code}"
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            if time.monotonic() + pause > deadline:
                raise errors.StoreUnavailableError(
                    f"The loopml server at {self.url} did not answer {name} for "
                    f"{self.retry_seconds:g} s ({problem}). Check that it runs and is "
                    "reachable (LOOPML_SERVER_URL), then retry."
                )
            log.warning("loopml server %s: %s; retrying %s", self.url, problem, name)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = httpx.Client(timeout=self._timeout)
                self._pid = os.getpid()
            return self._client


def _error(response: Any, name: str) -> errors.LoopmlError:
    """The loopml error the server reported, raised again as the same class."""
    try:
        found = orjson.loads(response.content)["error"]
        kind, message = str(found["type"]), str(found["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        kind, message = "", response.text[:500]
    if response.status_code == 422:  # the server's own validation of the request
        return errors.UsageError(f"The server refused {name}: {message}")
    known = getattr(errors, kind, None)
    if isinstance(known, type) and issubclass(known, errors.LoopmlError):
        return known(message)
    if response.status_code in (401, 403):
        return errors.AccessDeniedError(message)
    return errors.WorkspaceError(
        f"The loopml server answered {name} with HTTP {response.status_code}: {message}"
    )
