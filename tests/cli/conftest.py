"""Fixtures for CLI tests: check one-line errors (``cli``, which runs `loopml ...` in this
process, is in the suite's conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def _assert_one_line_error(result: Any, code: int, *fragments: str) -> None:
    assert result.code == code
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1  # one line, however long
    assert result.err.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.err


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """Check that a command failed with this exit code and one 'Error: ...' line."""
    return _assert_one_line_error
