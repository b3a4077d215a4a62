"""Names of a package that load on first use, so importing the package stays cheap."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_attributes(
    namespace: dict[str, Any], exports: dict[str, str], modules: dict[str, str] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``exports`` maps a name to the module defining it,
    ``modules`` a name to a module; each is imported when first asked for, then kept."""

    def __getattr__(name: str) -> Any:
        if modules and name in modules:
            value = import_module(modules[name])
        elif name in exports:
            value = getattr(import_module(exports[name]), name)
        else:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
