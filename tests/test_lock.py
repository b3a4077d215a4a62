"""The committed lock pins every package the tests and the demo install, each with a hash, and
was made from the pyproject.toml beside it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_locked_package_has_one_version_and_hashed_files() -> None:
    for package in _lock()["package"]:
        if package["name"] == "loopml":
            continue
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert package["version"] and files, package["name"]
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", f["hash"]) for f in files), package["name"]


def test_the_lock_was_made_from_this_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = next(p for p in _lock()["package"] if p["name"] == "loopml")["metadata"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("test", "examples"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    assert wanted <= {p["name"] for p in _lock()["package"]}
    assert set(locked["provides-extras"]) == set(project["optional-dependencies"])
    assert {_name(r["name"]) for r in locked["requires-dist"]} >= wanted


def test_make_installs_the_lock_and_refuses_a_stale_one() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"\$\(UV\) sync [^\n]*--locked", makefile)
    assert "--require-hashes -r tools/uv.txt" in makefile
