"""A damaged SQLite metadata file is said in one line with what to do, and nothing more is
written to it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

import loopml
from loopml.errors import MetadataCorruptedError
from loopml.workspace import close_opened_workspaces, use_workspace
from tests.conftest import make_workspace


def _damaged(folder: Path, how: str) -> Path:
    """A workspace with a run in it, whose metadata file is then damaged: pages overwritten
    in its middle ("pages"), or the whole file garbage ("garbage")."""
    workspace = make_workspace(folder)
    with use_workspace(workspace), loopml.start_run(experiment="e") as run:
        run.log_metric("auc", 0.7)
    workspace.close()
    close_opened_workspaces()
    path = folder / ".loopml" / "metadata.db"
    data = bytearray(path.read_bytes())
    if how == "pages":
        data[100 : 100 + 8192] = b"\x00damaged" * 1024
    else:
        data[:] = b"this is not a database" * 1000
    path.write_bytes(bytes(data))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["pages", "garbage"])
def test_a_damaged_file_is_refused_and_not_written(tmp_path: Path, how: str) -> None:
    path = _damaged(tmp_path, how)
    before = _digest(path)
    with (
        pytest.raises(MetadataCorruptedError, match="is damaged.*\\.recover"),
        use_workspace(make_workspace(tmp_path)),
        loopml.start_run(experiment="e") as run,
    ):
        run.log_metric("auc", 0.8)
    assert _digest(path) == before  # nothing was written


def test_the_command_line_says_it_in_one_line(tmp_path: Path) -> None:
    path = _damaged(tmp_path, "pages")
    done = subprocess.run(
        [sys.executable, "-m", "loopml.cli.main", "runs", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"LOOPML_HOME": str(tmp_path / ".loopml"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ")
    assert f"The metadata store {path} is damaged" in done.stderr and "Traceback" not in done.stderr
