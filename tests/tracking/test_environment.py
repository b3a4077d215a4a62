"""What a run records about its code and machine."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

import loopml
from loopml.tracking.environment import git_state
from loopml.workspace import Workspace


def git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.email=test@example.com", "-c", "user.name=test"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=folder, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def test_a_run_records_interpreter_host_command_and_packages(sqlite_workspace: Workspace) -> None:
    with loopml.start_run(experiment="env") as run:
        pass
    record = loopml.get_run(run.id)
    assert record.python_version == platform.python_version()
    assert record.host == socket.gethostname()
    assert "pytest" in record.command or "py.test" in record.command
    environment = loopml.run_environment(run.id)
    assert environment["python"] == platform.python_version()
    assert "sqlalchemy" in environment["packages"]


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "code.py").write_text("1")
    git(repo, "add", "code.py")
    git(repo, "commit", "-q", "-m", "code")
    commit = git(repo, "rev-parse", "HEAD")
    assert git_state(str(repo)) == (commit, False)
    (repo / "code.py").write_text("2")
    git_state.cache_clear()
    assert git_state(str(repo)) == (commit, True)
    assert git_state(str(tmp_path)) == (None, None)  # not a work tree


def test_a_run_in_a_git_work_tree_records_its_commit(tmp_path: Path, new_workspace) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "start")
    git_state.cache_clear()
    with loopml.start_run(experiment="env", workspace=new_workspace()) as run:
        pass
    record = loopml.get_run(run.id, workspace=run.workspace)
    assert record.git_commit is not None and len(record.git_commit) == 40
    assert record.git_dirty is False
