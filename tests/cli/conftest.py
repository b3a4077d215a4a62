"""Fixtures for CLI tests: run `loopml ...` in this process, and check one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from loopml.cli.main import main


@dataclass
class Result:
    """What a command returned and printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `loopml ARGS...` in this process and capture what it prints."""

    def invoke(*args: object) -> Result:
        monkeypatch.setattr(sys, "argv", ["loopml", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def _assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
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
