"""Pickles of code that keep where the code came from.

cloudpickle sends functions and classes that a worker cannot import (scripts, notebooks,
test files) by value. Since cloudpickle 3.1.3 it renames the file of every such code object
to ``<dynamic-code>``, so a traceback raised in a worker, or by a model loaded elsewhere, no
longer says which file and line of the user's failed. Here code objects travel as ``marshal``
writes them into ``.pyc`` files, file name included, with the source lines of their file, so
a traceback shows the line even where that file is not on disk. A pickle is loaded with plain
``pickle.loads``.
"""

from __future__ import annotations

import io
import linecache
import marshal
import types
from collections import ChainMap
from collections.abc import Iterable
from typing import Any

import cloudpickle

PROTOCOL = 5


def dumps(value: Any, *, by_value: Iterable[types.ModuleType] = ()) -> bytes:
    """Pickle value with cloudpickle, the given modules by value and code with its files."""
    registered = cloudpickle.list_registry_pickle_by_value()
    modules = [module for module in by_value if module.__name__ not in registered]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        buffer = io.BytesIO()
        _Pickler(buffer).dump(value)
        return buffer.getvalue()
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def load_code(data: bytes, filename: str, lines: list[str] | None) -> types.CodeType:
    """A code object from marshal's bytes; linecache learns its file's lines if it lacks them."""
    if lines and not linecache.getlines(filename):
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return marshal.loads(data)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, except that code objects keep their file names and lines."""

    def __init__(self, file: io.BytesIO) -> None:
        self.lines: dict[str, list[str] | None] = {}
        self.dispatch_table = ChainMap(  # before __init__, which reads it
            {types.CodeType: self._reduce_code}, cloudpickle.Pickler.dispatch_table
        )
        super().__init__(file, protocol=PROTOCOL)

    def _reduce_code(self, code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
        filename = code.co_filename
        if filename not in self.lines:  # one list per file, which pickle then writes once
            self.lines[filename] = linecache.getlines(filename) or None
        return load_code, (marshal.dumps(code), filename, self.lines[filename])
