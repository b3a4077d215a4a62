"""What a run records about where it ran: code version, interpreter, packages, host, command."""

from __future__ import annotations

import functools
import getpass
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

from loopml.hashing import sha256_json

GIT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class RunEnvironment:
    """The code and machine a run ran on; packages are stored once per distinct set."""

    host: str
    pid: int
    user: str
    command: str
    python_version: str
    git_commit: str | None
    git_dirty: bool | None
    environment_id: str | None
    environment_json: str | None


def capture(*, git: bool = True, packages: bool = True) -> RunEnvironment:
    """Describe the current process; git and package facts are read once per process."""
    commit, dirty = git_state(os.getcwd()) if git else (None, None)
    env_id, env_json = _packages_environment() if packages else (None, None)
    return RunEnvironment(
        host=socket.gethostname(),
        pid=os.getpid(),
        user=current_user(),
        command=shlex.join([sys.executable, *sys.argv]) if sys.argv else sys.executable,
        python_version=platform.python_version(),
        git_commit=commit,
        git_dirty=dirty,
        environment_id=env_id,
        environment_json=env_json,
    )


@functools.cache
def git_state(folder: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree containing folder, or (None, None) outside one."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _git(folder: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def _packages_environment() -> tuple[str, str]:
    installed = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            installed[name.lower()] = dist.version
    data = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(sorted(installed.items())),
    }
    return sha256_json(data), json.dumps(data, sort_keys=True)


def current_user() -> str:
    """The name of the user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
