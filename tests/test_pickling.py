"""Code pickled by value keeps its file name and source lines, wherever it is loaded."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

from loopml import pickling

MODULE = textwrap.dedent(
    """
    class Model:
        def predict(self, rows):
            scale = 2
            return [row["x"] * scale / 0 for row in rows]
    """
)

LOAD_AND_CALL = textwrap.dedent(
    """
    import pickle, sys, traceback
    model = pickle.loads(open(sys.argv[1], "rb").read())
    try:
        model.predict([{"x": 1}])
    except ZeroDivisionError:
        traceback.print_exc()
    """
)


def _module_from(path: Path, monkeypatch: pytest.MonkeyPatch):
    """A script's module, which no other process can import."""
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location("my_model_script", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_a_traceback_names_the_file_and_line_after_the_file_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "train.py"
    module = _module_from(script, monkeypatch)
    data = pickling.dumps(module.Model(), by_value=[module])
    (tmp_path / "model.pkl").write_bytes(data)
    script.unlink()  # as on another host, or after the script was edited away
    shown = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CALL, str(tmp_path / "model.pkl")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stderr
    assert f'File "{script}", line 5, in' in shown
    assert 'return [row["x"] * scale / 0 for row in rows]' in shown


def test_modules_sent_by_value_are_only_registered_while_pickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _module_from(tmp_path / "train.py", monkeypatch)
    pickling.dumps(module.Model(), by_value=[module])
    assert module.__name__ not in cloudpickle.list_registry_pickle_by_value()


def test_values_without_code_round_trip_as_plain_pickles() -> None:
    value = {"a": [1, 2.5, "x"], "b": (None, b"bytes")}
    assert pickle.loads(pickling.dumps(value)) == value
