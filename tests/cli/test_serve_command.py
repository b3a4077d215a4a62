"""`loopml serve`: bad input fails before any server starts."""

from __future__ import annotations


def test_serving_an_unknown_model_is_a_one_line_error(
    cli, one_line_error, sqlite_workspace
) -> None:
    one_line_error(cli("serve", "nope"), 2, "No model is registered as 'nope'")


def test_workers_must_be_positive(cli, one_line_error, sqlite_workspace) -> None:
    one_line_error(cli("serve", "nope", "--workers", "0"), 2, "--workers must be at least 1")


def test_serve_refuses_an_unknown_token_role(cli, one_line_error) -> None:
    one_line_error(cli("serve", "churn", "--token-role", "owner"), 2, "viewer, editor or admin")
