"""Who calls loopml server: a token, sent as a bearer token or as the password of HTTP Basic,
or the user an authenticating proxy in front of the server signed in (see
loopml.store.tokens.Gate). Every route, the MLflow ones included, takes ``Credentials`` and
asks the app's ``Guard`` whether they may do what the route does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security.http import HTTPBase, HTTPBearer

from loopml.store import tokens as tokens_repo
from loopml.store.tokens import Caller, Presented, Refused, Trust
from loopml.workspace import Workspace

# For the OpenAPI schema: the Gate itself reads the Authorization header.
_bearer = HTTPBearer(auto_error=False, description="A token of `loopml server token create`.")
_basic = HTTPBase(
    scheme="basic", auto_error=False, description="Any user name, and a token as the password."
)


class Guard:
    """The server's gate: whom a request comes from, checked against a role on every request
    (a revoked token stops at once). A workspace without tokens and without a trusted proxy
    lets every caller in as admin (the server says so at start)."""

    def __init__(self, workspace: Workspace) -> None:
        trust = Trust.from_settings(workspace.settings)
        self.gate = tokens_repo.Gate(workspace.metadata, trust=trust)

    def install(self, app: FastAPI) -> None:
        """Make this the guard of the app's routes, and answer its refusals."""
        app.state.guard = self
        app.add_exception_handler(Refused, _answer_refusal)

    def caller(self, presented: Presented, role: str) -> Caller:
        """The caller, if they may act in this role; else Refused (401 or 403)."""
        return self.gate.caller(presented, role)


def _presented(
    request: Request, _token: object = Depends(_bearer), _user: object = Depends(_basic)
) -> Presented:
    peer = request.client.host if request.client else None
    return request.app.state.guard.gate.read(request.headers, peer)


Credentials = Annotated[Presented, Depends(_presented)]


def _answer_refusal(_request: Request, refused: Refused) -> JSONResponse:
    body = {"error": {"type": "AccessDeniedError", "message": refused.message}}
    headers = {"WWW-Authenticate": tokens_repo.CHALLENGE} if refused.status == 401 else {}
    return JSONResponse(body, refused.status, headers=headers)
