"""One step's execution, wherever an executor runs it: call, retry, check, pickle the outputs.

Nothing here touches the workspace. A worker returns an Outcome (outputs as pickle bytes,
recorded metrics and tags, timings, or the error) and the driving process stores it.
"""

from __future__ import annotations

import importlib.machinery
import pickle
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from loopml import pickling
from loopml.pipeline.context import MetricRecord, PruneRule, Report, StepContext
from loopml.pipeline.step import Step
from loopml.pipeline.types import conforms, describe

PICKLE_PROTOCOL = 5


@dataclass(frozen=True, slots=True)
class Pickled:
    """A value still in its pickle bytes; unpickled by the worker that needs it."""

    data: bytes


@dataclass
class Task:
    """What a worker needs to run one step."""

    step: Step
    arguments: dict[str, Any]
    seed: int | None = None
    keep_values: bool = True
    pruning: PruneRule | None = None


@dataclass
class Outcome:
    """What came of running one step."""

    ok: bool
    attempts: int
    started: float
    seconds: float
    cpu_seconds: float
    outputs: dict[str, bytes] = field(default_factory=dict)
    values: dict[str, Any] | None = None
    metrics: list[MetricRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)  # output name -> module.Class
    message: str | None = None  # one line, for summaries
    error: str | None = None  # the traceback or the full explanation
    pruned: bool = False


class _StepProblem(Exception):
    """A step's result cannot be used; not retried, since running again gives the same."""


def pack(task: Task) -> bytes:
    """Pickle a task for another process; steps from modules a worker cannot import (scripts,
    notebooks, test files) travel by value."""
    module = sys.modules.get(task.step.func.__module__)
    by_value = [module] if module is not None and not _importable(module) else []
    return pickling.dumps(task, by_value=by_value)


def _importable(module: Any) -> bool:
    """Whether a worker finds this module by its name on sys.path, as the same file."""
    spec = getattr(module, "__spec__", None)
    if module.__name__ == "__main__" or spec is None:  # scripts, notebooks, exec'd code
        return False
    if not spec.has_location:  # built in or frozen
        return True
    parent, _, leaf = module.__name__.rpartition(".")
    path = getattr(sys.modules.get(parent), "__path__", None) if parent else None
    if parent and path is None:
        return False
    try:  # the path finder, since importlib.util.find_spec answers from sys.modules
        found = importlib.machinery.PathFinder.find_spec(leaf, path)
    except (ImportError, ValueError):
        return False
    return found is not None and found.origin == spec.origin


def run_packed(payload: bytes) -> Outcome:
    """Run a packed task in a worker; outputs come back as bytes only."""
    task = pickle.loads(payload)
    task.keep_values = False
    return run_task(task)


def run_task(task: Task) -> Outcome:
    """Call the step, retrying on exceptions as it allows; never raises for the step's errors."""
    clock = _Clock()
    attempts, context = 0, None
    try:
        arguments = {name: _unpack(value) for name, value in task.arguments.items()}
        for attempts in range(1, task.step.retries + 2):
            context = _context(task, attempts)
            try:
                result = _call(task.step, arguments, context)
                break
            except Exception:
                if attempts > task.step.retries:
                    raise
                time.sleep(task.step.backoff * 2 ** (attempts - 1))
        values = _values(task.step, result)
        outputs = {name: _pickle(task.step, name, value) for name, value in values.items()}
    except _StepProblem as problem:
        return clock.outcome(False, attempts, context, message=str(problem), error=str(problem))
    except Exception as error:
        text = "".join(traceback.format_exception(error)).rstrip()
        message = f"{type(error).__name__}: {error}"
        return clock.outcome(False, attempts, context, message=message, error=text)
    kept = values if task.keep_values else None
    types = {name: type_name(value) for name, value in values.items()}
    return clock.outcome(True, attempts, context, outputs=outputs, values=kept, types=types)


class _Clock:
    """When a step started, and how much wall and CPU time it has taken since."""

    def __init__(self) -> None:
        self.started, self.wall, self.cpu = time.time(), time.perf_counter(), time.process_time()

    def outcome(
        self, ok: bool, attempts: int, context: StepContext | None, **details: Any
    ) -> Outcome:
        return Outcome(
            ok=ok,
            attempts=attempts,
            started=self.started,
            seconds=time.perf_counter() - self.wall,
            cpu_seconds=time.process_time() - self.cpu,
            metrics=context.metrics if context else [],
            tags=context.tags if context else {},
            reports=context.reports if context else [],
            pruned=ok and bool(context and context.pruned),
            **details,
        )


def _context(task: Task, attempt: int) -> StepContext | None:
    if task.step.context_parameter is None:
        return None
    return StepContext(task.step.name, attempt=attempt, seed=task.seed, pruning=task.pruning)


def _call(step: Step, arguments: dict[str, Any], context: StepContext | None) -> Any:
    if context is None:
        return step.func(**arguments)
    return step.func(**arguments, **{step.context_parameter: context})


def _unpack(value: Any) -> Any:
    return pickle.loads(value.data) if isinstance(value, Pickled) else value


def type_name(value: Any) -> str:
    """'module.Class' of a value, as step runs record their outputs' types."""
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _values(step: Step, result: Any) -> dict[str, Any]:
    """The step's result split into its named outputs, each checked against its type."""
    if len(step.outputs) == 1:
        values = {step.outputs[0]: result}
    elif isinstance(result, tuple) and len(result) == len(step.outputs):
        values = dict(zip(step.outputs, result, strict=True))
    else:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise _StepProblem(
            f"{step.where.capitalize()} has {len(step.outputs)} outputs {step.outputs} and "
            f"must return a tuple of {len(step.outputs)} values, but returned {got}."
        )
    for (name, value), declared in zip(values.items(), step.output_types, strict=True):
        if not conforms(value, declared):
            raise _StepProblem(
                f"{step.where.capitalize()} declares it returns {name}: {describe(declared)}, "
                f"but returned a {type(value).__module__}.{type(value).__qualname__}. Fix the "
                "return value or the annotation."
            )
    return values


def _pickle(step: Step, name: str, value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as error:
        raise _StepProblem(
            f"{step.where.capitalize()} returned {name}, a {type(value).__qualname__}, which "
            f"cannot be pickled ({type(error).__name__}: {error}). Step outputs are stored as "
            "artifacts and sent between worker processes: return plain data (arrays, frames, "
            "fitted models), not open files, locks, generators or connections."
        ) from None
