"""Steps: plain typed Python functions, with what the pipeline needs to know about them.

A step's output is named after the function (or ``outputs=``); its inputs are its parameters,
read from the step that returns a value of the same name (or from ``inputs=`` wiring), else
from the pipeline's parameters. A parameter annotated ``StepContext`` receives the context.
"""

from __future__ import annotations

import inspect
import textwrap
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import PipelineError
from loopml.hashing import sha256_json
from loopml.pipeline.context import StepContext
from loopml.pipeline.types import UNCHECKED, describe, tuple_members

CODE_FORMAT = 1  # bump when the cache key of code changes meaning


class _Missing:
    def __repr__(self) -> str:
        return "<no default>"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a step is defined."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One input of a step: the function's parameter, and the name of the value it reads."""

    name: str
    source: str
    hint: Any
    default: Any = MISSING


@dataclass(frozen=True, eq=False)
class Step:
    """A function with its pipeline metadata. Calling it calls the function."""

    func: Callable[..., Any]
    name: str
    outputs: tuple[str, ...]
    output_types: tuple[Any, ...]
    parameters: tuple[Parameter, ...]
    context_parameter: str | None
    cache: bool
    retries: int
    backoff: float
    version: str | None
    location: Location
    code_digest: str = field(repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @property
    def where(self) -> str:
        """The step's name and location, for messages: "step 'train' (train.py:12)"."""
        return f"step {self.name!r} ({self.location})"


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    inputs: Mapping[str, str] | None = None,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    version: str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step: ``@step``, ``@step(retries=2)`` or ``step(f, name=...)``.

    name: the step's name (default: the function's). outputs: the name, or names for a
    function returning a tuple, of what it returns (default: the step's name). inputs: wiring
    of parameters to outputs of other names, ``{"frame": "clean_flights"}``. cache: False to
    always run it. retries, backoff: attempts after a failure, waiting backoff * 2**n seconds.
    version: change it to invalidate cached results when code the step calls has changed.
    """
    options = {
        "name": name,
        "outputs": outputs,
        "inputs": inputs,
        "cache": cache,
        "retries": retries,
        "backoff": backoff,
        "version": version,
    }
    if func is None:
        return lambda target: make_step(target, **options)
    return make_step(func, **options)


def make_step(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    inputs: Mapping[str, str] | None = None,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    version: str | None = None,
) -> Step:
    """Build a Step from a function (or re-wrap a Step with other options)."""
    if isinstance(func, Step):
        func = func.func
    location = location_of(func)
    if not callable(func) or inspect.isclass(func):
        raise PipelineError(f"A step must be a function, not {func!r} ({location}).")
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise PipelineError(
            f"Step {func.__name__!r} ({location}) is async; steps are plain "
            "functions. Call the coroutine with asyncio.run inside one."
        )
    name = name or getattr(func, "__name__", "")
    _check_name(name, "step name", location)
    _check_retries(name, retries, backoff, location)
    names = _output_names(name, outputs, location)
    hints = _hints(func)
    output_types = _output_types(name, names, hints.get("return", UNCHECKED), location)
    parameters, context = _parameters(func, name, hints, dict(inputs or {}), location)
    return Step(
        func=func,
        name=name,
        outputs=names,
        output_types=output_types,
        parameters=parameters,
        context_parameter=context,
        cache=bool(cache),
        retries=retries,
        backoff=float(backoff),
        version=version,
        location=location,
        code_digest=code_digest(func, version),
    )


def location_of(func: Any) -> Location:
    """The file and first line of a function's definition."""
    target = inspect.unwrap(func) if callable(func) else func
    try:
        file = inspect.getsourcefile(target) or inspect.getfile(target)
        line = target.__code__.co_firstlineno
    except (TypeError, AttributeError):
        return Location("<unknown>", 0)
    return Location(file, line)


def code_digest(func: Callable[..., Any], version: str | None) -> str:
    """The hash of a function's code: its source from ``def`` on, or else its bytecode."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        lines = source.splitlines()
        start = next(
            (i for i, text in enumerate(lines) if text.lstrip().startswith(("def ", "async def "))),
            0,
        )
        code: Any = "\n".join(lines[start:])
    except (OSError, TypeError):
        target = getattr(func, "__code__", None)
        code = [repr(target.co_code), repr(target.co_consts)] if target else repr(func)
    return sha256_json({"format": CODE_FORMAT, "code": code, "version": version})


def _check_name(name: Any, what: str, location: Location) -> None:
    if not isinstance(name, str) or not name or not name.isidentifier():
        raise PipelineError(
            f"The {what} {name!r} ({location}) must be a Python identifier, like 'features'."
        )


def _check_retries(name: str, retries: Any, backoff: Any, location: Location) -> None:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise PipelineError(
            f"Step {name!r} ({location}): retries must be a whole number of at least 0, not "
            f"{retries!r}."
        )
    if not isinstance(backoff, int | float) or isinstance(backoff, bool) or backoff < 0:
        raise PipelineError(
            f"Step {name!r} ({location}): backoff must be a number of seconds of at least 0, "
            f"not {backoff!r}."
        )


def _output_names(
    name: str, outputs: str | Sequence[str] | None, location: Location
) -> tuple[str, ...]:
    if outputs is None:
        return (name,)
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    if not names:
        raise PipelineError(f"Step {name!r} ({location}) must have at least one output.")
    for output in names:
        _check_name(output, "output name", location)
    if len(set(names)) != len(names):
        raise PipelineError(f"Step {name!r} ({location}) names an output twice: {names}.")
    return names


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations; where a name cannot be resolved, that annotation goes unchecked."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        raw = dict(getattr(func, "__annotations__", {}))
        return {key: value for key, value in raw.items() if not isinstance(value, str)}


def _output_types(
    name: str, names: tuple[str, ...], returned: Any, location: Location
) -> tuple[Any, ...]:
    if len(names) == 1:
        return (returned,)
    if returned is UNCHECKED:
        return (UNCHECKED,) * len(names)
    members = tuple_members(returned, len(names))
    if members is None:
        raise PipelineError(
            f"Step {name!r} ({location}) has {len(names)} outputs {names} but declares it "
            f"returns {describe(returned)}; declare tuple[...] with {len(names)} types."
        )
    return members


def _parameters(
    func: Callable[..., Any],
    name: str,
    hints: dict[str, Any],
    wiring: dict[str, str],
    location: Location,
) -> tuple[tuple[Parameter, ...], str | None]:
    signature = inspect.signature(func)
    parameters, context = [], None
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise PipelineError(
                f"Step {name!r} ({location}) takes *{parameter.name}; steps take named "
                "parameters only, so the pipeline knows what each one reads."
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise PipelineError(
                f"Step {name!r} ({location}) takes {parameter.name!r} positionally only; make "
                "it a normal parameter so the pipeline can pass it by name."
            )
        hint = hints.get(parameter.name, UNCHECKED)
        if hint is StepContext:
            context = parameter.name
            continue
        default = MISSING if parameter.default is parameter.empty else parameter.default
        source = wiring.pop(parameter.name, parameter.name)
        _check_name(source, "input name", location)
        parameters.append(Parameter(parameter.name, source, hint, default))
    if wiring:
        raise PipelineError(
            f"Step {name!r} ({location}) wires {', '.join(map(repr, wiring))}, which it does "
            f"not take. Its parameters: {', '.join(signature.parameters) or 'none'}."
        )
    return tuple(parameters), context
