"""Operations: the metadata store's interface, one declaration per unit of work.

An operation is a function of a connection and typed arguments that runs in one transaction.
It is declared once, with the HTTP route that carries it and the role a caller needs:

    @operation("POST /runs/{run_id}/params")
    def log_params(connection: Connection, run_id: str, values: dict[str, Any]) -> None: ...

and called with a store: ``log_params(workspace.metadata, run_id, values)``. The SQL store runs
it in a transaction of its own (a write transaction for any method but GET, or where
``write=True``); the remote store sends its arguments, as JSON, to a loopml server, which
runs it against its own SQL store. The types of the arguments and of the result are read from
the function's annotations, so the server's routes, its OpenAPI schema and the client's
encoding all come from this one declaration.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

P = ParamSpec("P")
R = TypeVar("R")
Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
JSON_CONFIG = ConfigDict(ser_json_inf_nan="strings")
ARGUMENTS_CONFIG = ConfigDict(ser_json_inf_nan="strings", extra="forbid", protected_namespaces=())
_PATH_FIELD = re.compile(r"{(\w+)(?::path)?}")

OPERATIONS: dict[str, Operation] = {}
_actor: ContextVar[str | None] = ContextVar("loopml_actor", default=None)


# The role some arguments need beyond the operation's own, such as a protected alias, from
# the arguments and the server's settings.
Needs = Callable[[dict[str, Any], Any], Role]


class Store(Protocol):
    """What can perform an operation: the SQL store, or a loopml server through HTTP."""

    def perform(self, operation: Operation, arguments: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Route:
    """How an operation travels over HTTP."""

    method: str
    path: str

    @functools.cached_property
    def path_fields(self) -> tuple[str, ...]:
        """The arguments the path carries (read once: every remote call needs them)."""
        return tuple(_PATH_FIELD.findall(self.path))


class Operation(Generic[P, R]):
    """One unit of work of the metadata store (see the module docstring)."""

    def __init__(
        self,
        function: Callable[..., R],
        route: Route,
        *,
        role: Role,
        write: bool,
        needs: Needs | None = None,
    ) -> None:
        self.function = function
        self.route = route
        self.role = role
        self.write = write
        self.needs = needs
        self.name = f"{_area(function.__module__)}.{function.__name__}"
        self.summary = (inspect.getdoc(function) or self.name).split("\n\n")[0]
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __call__(self, store: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        return store.perform(self, self.bind(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<operation {self.name}: {self.route.method} {self.route.path}>"

    def role_for(self, arguments: dict[str, Any], settings: Any) -> Role:
        """The role a caller needs for these arguments, under the server's settings."""
        if self.needs is None:
            return self.role
        asked = self.needs(arguments, settings)
        return max(self.role, asked, key=ROLES.index)

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The arguments by name, defaults included."""
        bound = self.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        return dict(list(bound.arguments.items())[1:])

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.function)

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        return typing.get_type_hints(self.function, include_extras=True)

    @functools.cached_property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The operation's arguments, without the connection."""
        return dict(list(self.signature.parameters.items())[1:])

    @functools.cached_property
    def arguments(self) -> type[BaseModel]:
        """The arguments as one model: validates and encodes them (unknown names refused)."""
        fields = {
            name: (self.hints[name], ... if p.default is p.empty else p.default)
            for name, p in self.parameters.items()
        }
        title = "".join(part.title() for part in self.function.__name__.split("_"))
        return create_model(title, __config__=ARGUMENTS_CONFIG, **fields)

    @functools.cached_property
    def result(self) -> TypeAdapter:
        """Validates and encodes what the operation returns."""
        return TypeAdapter(self.hints.get("return", Any), config=_config(self.hints["return"]))


def _area(module: str) -> str:
    """loopml.tracking.operations -> tracking."""
    parts = module.split(".")
    return parts[1] if parts[0] == "loopml" and len(parts) > 2 else parts[-1]


def _config(kind: Any) -> ConfigDict | None:
    """JSON keeps NaN and infinities as strings; a dataclass's own config cannot be
    replaced, so it is left to the dataclass."""
    return None if inspect.isclass(kind) and hasattr(kind, "__dataclass_fields__") else JSON_CONFIG


def operation(
    route: str,
    *,
    role: Role | None = None,
    write: bool | None = None,
    needs: Needs | None = None,
) -> Callable[[Callable[..., R]], Operation[..., R]]:
    """Declare a function of (connection, ...) an operation carried by ``"METHOD /path"``.

    role: who may call it over HTTP (viewer for GET, editor otherwise, unless given).
    write: whether it needs a write transaction (every method but GET, unless given).
    needs: the role that some arguments need beyond that, under the server's settings.
    """
    method, _, path = route.partition(" ")
    if method not in METHODS or not path.startswith("/"):
        raise ValueError(f"An operation's route is 'METHOD /path', not {route!r}.")
    reads = method == "GET"

    def declare(function: Callable[..., R]) -> Operation[..., R]:
        found = Operation(
            function,
            Route(method, path),
            role=role or ("viewer" if reads else "editor"),
            write=(not reads) if write is None else write,
            needs=needs,
        )
        missing = [f for f in found.route.path_fields if f not in found.parameters]
        if missing:
            raise ValueError(f"{found.name}: the route names {missing}, which it does not take.")
        if found.name in OPERATIONS:
            raise ValueError(f"Two operations are named {found.name}.")
        OPERATIONS[found.name] = found
        return found

    return declare


def current_actor(default: str) -> str:
    """Who the running operation acts for: the name of the caller's token on a server, else
    default (the user the client says it runs as)."""
    return _actor.get() or default


@contextmanager
def acting_for(name: str | None) -> Iterator[None]:
    """Run the operations of this context for the named caller."""
    token = _actor.set(name)
    try:
        yield
    finally:
        _actor.reset(token)
