"""A failed step's traceback names the user's file, line and source line on every executor:
for a step in a module the workers import, in a file they cannot import, and in a notebook
cell whose source exists only in the driving process."""

from __future__ import annotations

import importlib.util
import linecache
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import loopml
from loopml.errors import StepFailedError
from loopml.pipeline import DaskExecutor, Executor, InlineExecutor, Pipeline, ProcessExecutor

pytestmark = pytest.mark.slow

STEPS = """
import pandas as pd


def source() -> pd.DataFrame:
    return pd.DataFrame({"x": [1, 2, 3]})


def broken(source: pd.DataFrame) -> int:
    total = int(source.x.sum())
    raise KeyError(f"missing column after {total} rows")
"""
RAISING_LINE = 'raise KeyError(f"missing column after {total} rows")'
LINE_NUMBER = STEPS.splitlines().index("    " + RAISING_LINE) + 1


@pytest.fixture(scope="module")
def importable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.ModuleType]:
    """A module on sys.path, which workers started afterwards import by name."""
    folder = tmp_path_factory.mktemp("importable")
    name = f"user_steps_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(STEPS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        patch.setenv("PYTHONPATH", str(folder))
        yield importlib.import_module(name)
    sys.modules.pop(name, None)


@pytest.fixture(scope="module", params=["inline", "process", "dask"])
def executor(request: pytest.FixtureRequest, importable: types.ModuleType) -> Iterator[Executor]:
    made: Callable[[], Executor] = {
        "inline": InlineExecutor,
        "process": lambda: ProcessExecutor(2),
        "dask": lambda: DaskExecutor(workers=2),
    }[request.param]
    started = made()
    yield started
    started.shutdown()


def _file_module(folder: Path) -> types.ModuleType:
    """A module loaded from a file outside sys.path: workers cannot import it."""
    path = folder / "my_script.py"
    path.write_text(STEPS)
    spec = importlib.util.spec_from_file_location(f"script_{uuid.uuid4().hex[:8]}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _notebook_cell() -> types.ModuleType:
    """Code run as a notebook runs a cell: its source is in linecache alone, not on disk."""
    filename = f"<cell-{uuid.uuid4().hex[:8]}>"
    linecache.cache[filename] = (len(STEPS), None, STEPS.splitlines(True), filename)
    module = types.ModuleType(f"cell_{uuid.uuid4().hex[:8]}")
    exec(compile(STEPS, filename, "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    return module


def _failed_step_traceback(module: types.ModuleType, executor: Executor) -> str:
    pipeline = Pipeline([module.source, module.broken])
    with pytest.raises(StepFailedError, match="missing column after 6 rows") as caught:
        pipeline.run(executor=executor, cache=False)
    child = next(c for c in loopml.child_runs(caught.value.run_id) if c.name == "broken")
    return child.error


def test_a_step_in_an_importable_module(
    executor: Executor, importable: types.ModuleType, sqlite_workspace
) -> None:
    error = _failed_step_traceback(importable, executor)
    assert f'File "{importable.__file__}", line {LINE_NUMBER}, in broken' in error
    assert RAISING_LINE in error


def test_a_step_in_a_file_workers_cannot_import(
    executor: Executor, tmp_path: Path, sqlite_workspace
) -> None:
    module = _file_module(tmp_path)
    error = _failed_step_traceback(module, executor)
    assert f'File "{tmp_path / "my_script.py"}", line {LINE_NUMBER}, in broken' in error
    assert RAISING_LINE in error
    assert "<dynamic-code>" not in error


def test_a_step_in_a_notebook_cell(executor: Executor, sqlite_workspace) -> None:
    module = _notebook_cell()
    error = _failed_step_traceback(module, executor)
    filename = module.broken.__code__.co_filename
    assert f'File "{filename}", line {LINE_NUMBER}, in broken' in error
    assert RAISING_LINE in error
