"""Pipeline parameters: binding the caller's values, parsing them from the command line, and
the tokens that stand for them in cache keys.

External data is hashed, not trusted by name: a snapshot parameter enters the cache key as
its content hash, and a path to an existing file or folder as the hash of what it holds.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from loopml.errors import ParameterError
from loopml.hashing import sha256_bytes
from loopml.pipeline.graph import Pipeline, PipelineParam, suggest
from loopml.pipeline.types import UNCHECKED, conforms, describe, runtime_classes

if TYPE_CHECKING:
    from loopml.workspace import Workspace

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


def bind(pipeline: Pipeline, given: Mapping[str, Any], workspace: Workspace) -> dict[str, Any]:
    """Every parameter's value: given, else its default; snapshots resolved; types checked."""
    _check_names(pipeline, given)
    values: dict[str, Any] = {}
    for name, param in pipeline.params.items():
        if name in given:
            value = given[name]
        elif param.required:
            raise ParameterError(
                f"Pipeline {pipeline.name!r} needs the parameter {name!r} (read by "
                f"{_readers(param)}): pipeline.run(params={{{name!r}: ...}}) or "
                f"--param {name}=..."
            )
        else:
            value = param.default
        values[name] = _coerce(pipeline, param, value, workspace)
    return values


def _check_names(pipeline: Pipeline, given: Mapping[str, Any]) -> None:
    for name in given:
        if name not in pipeline.params:
            known = ", ".join(sorted(pipeline.params)) or "none"
            raise ParameterError(
                f"Pipeline {pipeline.name!r} takes no parameter {name!r}."
                f"{suggest(name, pipeline.params)} Its parameters: {known}."
            )


def _readers(param: PipelineParam) -> str:
    return ", ".join(f"step {name!r}" for name in param.readers) or "no step"


def _coerce(pipeline: Pipeline, param: PipelineParam, value: Any, workspace: Workspace) -> Any:
    classes = runtime_classes(param.hint) or ()
    if isinstance(value, str) and _wants_snapshot(classes):
        from loopml.data.snapshots import get

        return get(value, workspace=workspace)
    if isinstance(value, str) and Path in classes:
        return Path(value)
    if not conforms(value, param.hint):
        raise ParameterError(
            f"Parameter {param.name!r} of pipeline {pipeline.name!r} must be "
            f"{describe(param.hint)} ({_readers(param)} declares it so), not "
            f"{type(value).__name__} {value!r}."
        )
    return value


def _wants_snapshot(classes: Iterable[type]) -> bool:
    return any(
        cls.__name__ == "Snapshot" and cls.__module__ == "loopml.data.snapshots" for cls in classes
    )


def parse_assignments(pipeline: Pipeline, assignments: Iterable[str]) -> dict[str, Any]:
    """``["max_depth=6", "model=gbm"]`` as values of the types the steps declare."""
    values: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"Write parameters as name=value, like max_depth=6, not {text!r}.")
        _check_names(pipeline, {name: raw})
        values[name] = parse_value(pipeline.params[name], raw)
    return values


def parse_value(param: PipelineParam, raw: str) -> Any:
    """A command-line string as the parameter's declared type (YAML rules when undeclared)."""
    classes = runtime_classes(param.hint)
    if classes is None or param.hint is UNCHECKED:
        return _yaml_scalar(raw)
    for cls in _preference(classes):
        try:
            return _convert(cls, raw)
        except (TypeError, ValueError):
            continue
    raise ParameterError(
        f"Parameter {param.name!r} must be {describe(param.hint)}, and {raw!r} is not: "
        f"{_readers(param)} declares it so."
    )


def _preference(classes: tuple[type, ...]) -> list[type]:
    order = [type(None), bool, int, float]
    return sorted(classes, key=lambda cls: order.index(cls) if cls in order else len(order))


def _convert(cls: type, raw: str) -> Any:
    text = raw.strip()
    if cls is type(None):
        if text.lower() in ("none", "null", "~", ""):
            return None
        raise ValueError(raw)
    if cls is bool:
        if text.lower() in TRUE | FALSE:
            return text.lower() in TRUE
        raise ValueError(raw)
    if cls in (int, float, str, Path):
        return cls(text if cls is not str else raw)
    if cls.__name__ == "Snapshot":
        return raw
    if cls in (list, dict, tuple):
        value = yaml.safe_load(raw)
        if isinstance(value, list if cls is tuple else cls):
            return cls(value)
        raise ValueError(raw)
    raise TypeError(cls)


def _yaml_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def token(value: Any) -> Any:
    """What stands for a parameter value in a cache key."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else value
    digest = getattr(getattr(value, "record", None), "digest", None)
    if digest is not None:  # a Snapshot
        return {"snapshot": digest}
    if isinstance(value, os.PathLike):
        return {"path": _path_token(Path(value))}
    if isinstance(value, list | tuple):
        return [token(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: token(item) for key, item in sorted(value.items())}
    try:
        return {"pickle": sha256_bytes(pickle.dumps(value, protocol=5))}
    except Exception:
        return {"repr": repr(value)}


def _path_token(path: Path) -> str:
    from loopml.tracking.artifacts import hash_content

    if path.exists():
        return hash_content(path).digest
    return f"missing:{path.resolve()}"


def display(value: Any) -> Any:
    """A parameter value as recorded on the run: plain values as they are, others as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    ref = getattr(value, "ref", None)
    return ref if isinstance(ref, str) else str(value)[:500]
