"""The UI's routes: one page per question a user asks, and the fragments htmx swaps into
them. A page asked for by htmx (the HX-Request header) is answered with its fragment only,
so one URL serves both and the browser's address stays shareable."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from loopml import errors
from loopml.server.auth import Credentials, Guard
from loopml.server.transfer import verified_file
from loopml.server.ui import views
from loopml.server.ui.render import render
from loopml.store.tokens import CHALLENGE, Refused
from loopml.workspace import Workspace

STATIC = Path(__file__).parent / "static"
Keys = Annotated[list[str] | None, Query()]  # ?key=a&key=b, ?run=a&run=b
PREFIX = "/ui"


def add_ui(app: FastAPI, workspace: Workspace, guard: Guard) -> None:
    """Serve the UI under /ui (and / sends a browser there)."""
    pages = _Pages(workspace)
    app.add_api_route(f"{PREFIX}/static/plotly.min.js", _plotly, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
    app.add_api_route("/", lambda: RedirectResponse(f"{PREFIX}/"), include_in_schema=False)
    for path, page in pages.routes():
        app.add_api_route(PREFIX + path, _guarded(page, guard), include_in_schema=False)


class _Pages:
    """The pages, each a function of the request and its path and query values."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def routes(self) -> list[tuple[str, Callable[..., Response]]]:
        return [
            ("/", self.experiments),
            ("/experiments/{name}", self.runs),
            ("/runs/{run_id}", self.run),
            ("/runs/{run_id}/metrics.json", self.metrics),
            ("/compare", self.compare),
            ("/runs/{run_id}/artifacts/{name:path}", self.artifact),
        ]

    def experiments(self, request: Request) -> Response:
        return render(request, "experiments.html.j2", **views.experiments(self.workspace))

    def runs(
        self,
        request: Request,
        name: str,
        where: str = "",
        sort: str = "",
        cursor: str = "",
        group: str = "",
    ) -> Response:
        table = views.runs_table(self.workspace, name, where, sort, cursor)
        table["group"] = group
        if group and not table["error"]:
            table["grouping"] = views.groups(self.workspace, name, where, group)
        status = 400 if table["error"] and not _htmx(request) else 200
        if _htmx(request):
            return render(request, "runs_table.html.j2", status=status, **table)
        return render(request, "runs.html.j2", status=status, **table)

    def run(self, request: Request, run_id: str) -> Response:
        return render(request, "run.html.j2", **views.run(self.workspace, run_id))

    def compare(self, request: Request, run: Keys = None) -> Response:
        return render(request, "compare.html.j2", **views.compare(self.workspace, run or []))

    def metrics(self, request: Request, run_id: str, key: Keys = None) -> Response:
        return JSONResponse(views.metric_series(self.workspace, run_id, key or []))

    def artifact(self, request: Request, run_id: str, name: str) -> Response:
        found = views.artifact(self.workspace, run_id, name)
        return verified_file(self.workspace.artifacts, found.digest, Path(name).name)


def _guarded(page: Callable[..., Response], guard: Guard) -> Callable[..., Response]:
    """The page for a viewer, with refusals and errors as pages that say what happened."""

    @functools.wraps(page)
    def answer(request: Request, credentials: Credentials, **given: Any) -> Response:
        try:
            guard.caller(credentials, "viewer")
            return page(request, **given)
        except Refused as refused:
            headers = {"WWW-Authenticate": CHALLENGE} if refused.status == 401 else {}
            return _problem(request, refused.status, "Not allowed", refused.message, headers)
        except errors.NotFoundError as error:
            return _problem(request, 404, "Not found", str(error))
        except errors.LoopmlError as error:
            return _problem(request, 400, "Cannot show this", str(error))

    own = inspect.signature(page).parameters.values()
    given = [p for p in own if p.name != "request"]
    answer.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter(
                "credentials", inspect.Parameter.KEYWORD_ONLY, annotation=Credentials
            ),
            *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in given),
        ]
    )
    return answer


def _problem(
    request: Request, status: int, title: str, message: str, headers: dict | None = None
) -> Response:
    response = render(request, "problem.html.j2", status=status, title=title, message=message)
    response.headers.update(headers or {})
    return response


def _htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _plotly() -> FileResponse:
    """Plotly's script, from the installed plotly package (not copied into loopml)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript")
