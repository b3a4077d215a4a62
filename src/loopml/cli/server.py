"""`loopml server`: the workspace's API for a team, and its tokens."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Annotated

import typer

from loopml.errors import UsageError

server_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Serve this workspace's metadata over HTTP (REST API under /api/v1, docs at /docs), "
    "or manage the tokens that may call it.",
)
token_app = typer.Typer(no_args_is_help=True, help="Tokens that may call the server.")
server_app.add_typer(token_app, name="token")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@server_app.callback()
def server(
    context: typer.Context,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 2,
) -> None:
    """Serve the workspace loopml.toml and LOOPML_* configure (SQLite and a folder, or
    PostgreSQL and S3). Once a token exists every request needs one; without any, the
    server listens on loopback addresses only."""
    if context.invoked_subcommand is not None:
        return
    from loopml.store import tokens as tokens_repo
    from loopml.workspace import current_workspace

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}.")
    workspace = current_workspace()
    if workspace.settings.server_url:
        raise UsageError(
            "This workspace is itself reached through a loopml server (LOOPML_SERVER_URL): "
            "run 'loopml server' where the database is configured."
        )
    with workspace.metadata.read() as connection:
        guarded = tokens_repo.any_tokens(connection)
    proxy = workspace.settings.server_trusted_header
    if proxy:
        typer.echo(
            f"Callers without a token are whom the proxy names in {proxy}, from "
            f"{', '.join(workspace.settings.server_trusted_proxies)}.",
            err=True,
        )
    guarded = guarded or bool(proxy)
    if not guarded and not _loopback(host):
        raise UsageError(
            f"The workspace has no tokens, so anyone reaching {host} would be admin. Create "
            "one first: loopml server token create --name admin --role admin."
        )
    if not guarded:
        typer.echo(
            "The workspace has no tokens: every caller is admin. Listening on loopback only.",
            err=True,
        )
    typer.echo(f"loopml server on http://{host}:{port} (API docs at /docs, UI at /ui)", err=True)
    _run(host, port, workers)


def ui(
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 5000,
    browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the UI in the web browser.")
    ] = True,
) -> None:
    """Open the web UI of this workspace: loopml server on 127.0.0.1, for you alone. A
    workspace reached through a team's server (LOOPML_SERVER_URL) opens that server's UI."""
    import webbrowser

    from loopml.workspace import current_workspace

    workspace = current_workspace()
    if workspace.settings.server_url:
        address = workspace.settings.server_url.rstrip("/") + "/ui/"
        typer.echo(f"The workspace's UI is at {address}", err=True)
        if browser:
            webbrowser.open(address)
        return
    address = f"http://127.0.0.1:{port}/ui/"
    typer.echo(f"loopml UI at {address} (Ctrl+C stops it)", err=True)
    if browser:
        threading.Timer(1.5, webbrowser.open, [address]).start()
    _run("127.0.0.1", port, 1)


def _run(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "loopml.server.app:app_from_settings",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for (ci, ana).")],
    role: Annotated[
        str, typer.Option("--role", help="viewer (read), editor (write), or admin.")
    ] = "viewer",
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 90d, 12h, 30m (default never).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a token and print it once: only its hash is stored."""
    from loopml.cli.render import print_json
    from loopml.store import tokens as tokens_repo
    from loopml.workspace import current_workspace

    expires_at = tokens_repo.parse_expiry(expires, time.time())
    made = tokens_repo.create_token(current_workspace().metadata, name, role, expires_at)
    if as_json:
        print_json({"name": name, "role": role, "token": made.token})
        return
    typer.echo(made.token)
    typer.echo(
        f"Token {name!r} ({role}). It is shown this once: keep it now (LOOPML_TOKEN).", err=True
    )


@token_app.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """Every token: name, role, when it was made and by whom, expiry, revocation."""
    from dataclasses import asdict

    from loopml.cli.render import console, print_json, when
    from loopml.store import tokens as tokens_repo
    from loopml.store.pages import every
    from loopml.workspace import current_workspace

    found = list(every(tokens_repo.list_tokens, current_workspace().metadata))
    if as_json:
        print_json([asdict(t) for t in found])
        return
    from rich.table import Table

    table = Table("name", "role", "state", "created", "by", "expires")
    now = time.time()
    for t in found:
        state = "revoked" if t.revoked_at else ("active" if t.active(now) else "expired")
        expiry = when(t.expires_at) if t.expires_at else "never"
        table.add_row(t.name, t.role, state, when(t.created_at), t.created_by, expiry)
    console().print(table)


@token_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token: every request with it is refused from now on."""
    from loopml.store import tokens as tokens_repo
    from loopml.workspace import current_workspace

    tokens_repo.revoke_token(current_workspace().metadata, name)
    typer.echo(f"Token {name!r} revoked.")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
