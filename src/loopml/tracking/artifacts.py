"""Turning files, folders and Python objects into stored artifacts, and back.

Kinds: 'file' (one file), 'directory' (a JSON manifest of its files' relative paths and
hashes, and of its folders), 'bytes' (raw bytes) and 'pickle' (any other Python object). A
folder's hash is the hash of its manifest, so equal folders have equal hashes wherever they
live.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.artifacts.store import ArtifactStore
from loopml.errors import ArtifactNotFoundError, InvalidValueError, UsageError
from loopml.hashing import canonical_json, sha256_bytes, sha256_file
from loopml.store.records import ArtifactRecord

PICKLE_PROTOCOL = 5


@dataclass(frozen=True, slots=True)
class Content:
    """Content identified by hash: what a run links to as an input or output."""

    digest: str
    kind: str
    size: int
    source: str | None


def store_content(store: ArtifactStore, source: Any) -> Content:
    """Store a path, bytes or a Python object; return its hash and kind."""
    return _content(source, store.put_file, store.put_bytes)


def hash_content(source: Any) -> Content:
    """Hash a path, bytes or object exactly as store_content would, without storing it."""
    return _content(source, sha256_file, sha256_bytes)


def default_name(source: Any) -> str | None:
    """The name an artifact gets when none is given: a path's final component."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name or str(source)
    return None


def _content(
    source: Any, put_file: Callable[[Path], str], put_bytes: Callable[[bytes], str]
) -> Content:
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if path.is_file():
            return Content(put_file(path), "file", path.stat().st_size, str(path.resolve()))
        if path.is_dir():
            return _directory(path, put_file, put_bytes)
        raise ArtifactNotFoundError(
            f"Cannot log {str(source)!r}: no such file or folder (relative to {Path.cwd()}). "
            "To log a Python string as an object, pass it with a name as bytes: "
            "value.encode()."
        )
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return Content(put_bytes(data), "bytes", len(data), None)
    data = _pickle(source)
    return Content(put_bytes(data), "pickle", len(data), None)


def _directory(
    folder: Path, put_file: Callable[[Path], str], put_bytes: Callable[[bytes], str]
) -> Content:
    files, folders, total = [], [], 0
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_dir():
            folders.append(relative)
        elif path.is_file():
            size = path.stat().st_size
            files.append({"path": relative, "digest": put_file(path), "size": size})
            total += size
    manifest = canonical_json({"kind": "directory", "files": files, "folders": folders})
    return Content(put_bytes(manifest), "directory", total, str(folder.resolve()))


def _pickle(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise InvalidValueError(
            f"Cannot log an object of type {type(value).__name__} as an artifact: it cannot be "
            f"pickled ({error}). Save it to a file yourself and log the file's path."
        ) from None


def load(store: ArtifactStore, record: ArtifactRecord, destination: str | Path | None) -> Any:
    """An artifact's content: a local path for files and folders, else the object itself."""
    if record.kind == "bytes":
        return store.get_bytes(record.digest)
    if record.kind == "pickle":
        return pickle.loads(store.get_bytes(record.digest))
    return materialize(store, record, destination)


def materialize(
    store: ArtifactStore, record: ArtifactRecord, destination: str | Path | None
) -> Path:
    """Copy an artifact to a local path, verified: into destination if it is an existing
    folder, else to destination itself (default: a new temporary folder)."""
    target = Path(destination) if destination is not None else _scratch_folder()
    if target.is_dir():
        target = _inside(target, record.name)
    if target.exists() and not target.is_dir() and record.kind == "directory":
        raise UsageError(
            f"Cannot copy the folder artifact {record.name!r} to {target}: a file is there. "
            "Choose another destination."
        )
    if target.is_dir() and record.kind != "directory":
        raise UsageError(
            f"Cannot copy the file artifact {record.name!r} to {target}: a folder is there. "
            "Choose another destination."
        )
    if record.kind != "directory":
        return store.get_file(record.digest, target)
    manifest = json.loads(store.get_bytes(record.digest))
    target.mkdir(parents=True, exist_ok=True)
    for relative in manifest["folders"]:
        _inside(target, relative).mkdir(parents=True, exist_ok=True)
    for entry in manifest["files"]:
        store.get_file(entry["digest"], _inside(target, entry["path"]))
    return target


def _inside(root: Path, relative: str) -> Path:
    """root / relative, refused when it would leave root (a name such as '../x' stored
    before names were checked, or a crafted folder manifest)."""
    found = (root / relative).resolve()
    if not found.is_relative_to(root.resolve()):
        raise UsageError(
            f"The artifact path {relative!r} leaves {root}; it is not written. Names inside a "
            "run are relative and have no '..' part."
        )
    return root / relative


def _scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="loopml-artifact-"))
