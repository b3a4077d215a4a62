"""Finding a pipeline from a reference like ``my_project.pipelines:train``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from loopml.errors import UsageError
from loopml.pipeline.graph import Pipeline


def load_pipeline(ref: str) -> Pipeline:
    """Import ``module:attribute`` (the working directory is importable) or
    ``path/to/file.py:attribute`` and return the Pipeline it names."""
    module_name, sep, attribute = ref.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(
            f"A pipeline is named as module:attribute, like my_project.pipelines:train, not "
            f"{ref!r}."
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = _import(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(
                f"Cannot import {module_name!r} for pipeline {ref!r}: no module named "
                f"{error.name!r} (searched from {os.getcwd()}). Check the name, or run from "
                "the project's folder."
            ) from None
        raise _import_failed(ref, error) from None
    except Exception as error:
        raise _import_failed(ref, error) from None
    found = getattr(module, attribute, None)
    if found is None:
        names = sorted(n for n, v in vars(module).items() if isinstance(v, Pipeline))
        raise UsageError(
            f"Module {module_name!r} has no {attribute!r}. Pipelines it defines: "
            f"{', '.join(names) or 'none'}."
        )
    if callable(found) and not isinstance(found, Pipeline):
        found = found()
    if not isinstance(found, Pipeline):
        raise UsageError(
            f"{ref} is a {type(found).__name__}, not a Pipeline: define it as "
            "Pipeline([...]) or a function returning one."
        )
    return found


def _import(name: str) -> ModuleType:
    if not name.endswith(".py"):
        return importlib.import_module(name)
    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"Cannot load a pipeline from {name}: no such file.")
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _import_failed(ref: str, error: BaseException) -> UsageError:
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return UsageError(
        f"Importing the module of pipeline {ref!r} failed{where}: {type(error).__name__}: {error}"
    )
