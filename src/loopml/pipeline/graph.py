"""Pipeline: a DAG of steps whose edges come from parameter names, checked when it is built.

Every problem found while building names the step at fault with its file and line: a cycle,
an input nothing provides, two steps returning one name, an output whose type does not fit
the parameter that reads it, parameters whose defaults disagree.
"""

from __future__ import annotations

import difflib
import graphlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import PipelineError
from loopml.pipeline.step import MISSING, Parameter, Step, make_step
from loopml.pipeline.types import UNCHECKED, compatible, describe

if TYPE_CHECKING:
    from loopml.pipeline.executors import Executor
    from loopml.pipeline.result import PipelineResult
    from loopml.workspace import Workspace

REQUIRED: Any = ...  # Pipeline(params={"snapshot": REQUIRED}): must be given at run time


@dataclass(frozen=True, slots=True)
class PipelineParam:
    """A value the pipeline takes from its caller: its default and the type steps expect."""

    name: str
    default: Any
    hint: Any
    readers: tuple[str, ...]

    @property
    def required(self) -> bool:
        return self.default is MISSING


class Pipeline:
    """Steps wired by name into a DAG. Build it once; run it with :meth:`run`."""

    def __init__(
        self,
        steps: Iterable[Callable[..., Any] | Step],
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.steps: tuple[Step, ...] = tuple(
            item if isinstance(item, Step) else make_step(item) for item in steps
        )
        if not self.steps:
            raise PipelineError("A pipeline needs at least one step.")
        self.name = name or self.steps[-1].name
        self._module = sys._getframe(1).f_globals.get("__name__")
        self.producers = _producers(self.steps)
        self.params = _params(self.steps, self.producers, dict(params or {}))
        _check_edges(self.steps, self.producers)
        self.order = _order(self.steps, self.producers)

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, steps={[s.name for s in self.order]})"

    def step(self, name: str) -> Step:
        """The step of a name."""
        for item in self.steps:
            if item.name == name:
                return item
        known = ", ".join(item.name for item in self.steps)
        raise PipelineError(f"Pipeline {self.name!r} has no step {name!r}. Its steps: {known}.")

    def upstream(self, item: Step) -> list[Step]:
        """The steps whose outputs a step reads."""
        found = {
            self.producers[p.source].name for p in item.parameters if p.source in self.producers
        }
        return [other for other in self.order if other.name in found]

    @property
    def ref(self) -> str | None:
        """Where this pipeline can be loaded from, if it is a module global: 'module:name',
        or 'path/to/script.py:name' for a script run as __main__."""
        module = sys.modules.get(self._module or "")
        if module is None:
            return None
        where = self._module
        if where == "__main__":
            file = getattr(module, "__file__", None)
            if file is None:
                return None
            where = str(Path(file).resolve())
        for key, value in vars(module).items():
            if value is self:
                return f"{where}:{key}"
        return None

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        cache: bool = True,
        executor: Executor | str | None = None,
        experiment: str | None = None,
        seed: int | None = None,
        workspace: Workspace | None = None,
        progress: bool | None = None,
    ) -> PipelineResult:
        """Run the pipeline as a tracked run with one child run per step.

        Steps whose code, parameters and inputs are unchanged reuse their cached outputs
        unless cache=False. executor: 'inline' (default), 'process', 'process:N', 'dask',
        'dask://host:8786' or an Executor. Raises StepFailedError when a step fails.
        """
        from loopml.pipeline.runner import run_pipeline

        return run_pipeline(
            self,
            params,
            cache=cache,
            executor=executor,
            experiment=experiment,
            seed=seed,
            workspace=workspace,
            progress=progress,
        )

    def resume(
        self,
        run_id: str,
        *,
        executor: Executor | str | None = None,
        workspace: Workspace | None = None,
        progress: bool | None = None,
    ) -> PipelineResult:
        """Run a failed or killed pipeline run again with its params, reusing the outputs of
        the steps that finished (when their code is unchanged)."""
        from loopml.pipeline.runner import resume_pipeline

        return resume_pipeline(
            self, run_id, executor=executor, workspace=workspace, progress=progress
        )


def _producers(steps: tuple[Step, ...]) -> dict[str, Step]:
    producers: dict[str, Step] = {}
    names: dict[str, Step] = {}
    for item in steps:
        if item.name in names:
            raise PipelineError(
                f"Two steps are named {item.name!r}: {names[item.name].location} and "
                f"{item.location}. Rename one: step(func, name='...')."
            )
        names[item.name] = item
        for output in item.outputs:
            if output in producers:
                raise PipelineError(
                    f"Two steps return {output!r}: {producers[output].where} and "
                    f"{item.where}. Give one of them another output name: "
                    "step(func, outputs='...')."
                )
            producers[output] = item
    return producers


def _params(
    steps: tuple[Step, ...], producers: dict[str, Step], declared: dict[str, Any]
) -> dict[str, PipelineParam]:
    for key in declared:
        if key in producers:
            raise PipelineError(
                f"Pipeline parameter {key!r} is also returned by {producers[key].where}; a "
                "name is either a parameter or a step's output."
            )
    readers: dict[str, list[tuple[Step, Parameter]]] = {}
    for item in steps:
        for parameter in item.parameters:
            if parameter.source not in producers:
                readers.setdefault(parameter.source, []).append((item, parameter))
    found = {name: _param(name, uses, declared, producers) for name, uses in readers.items()}
    for key, value in declared.items():
        found.setdefault(key, PipelineParam(key, _default(value), UNCHECKED, ()))
    return found


def _param(
    name: str,
    uses: list[tuple[Step, Parameter]],
    declared: dict[str, Any],
    producers: dict[str, Step],
) -> PipelineParam:
    hint = next((p.hint for _, p in uses if p.hint is not UNCHECKED), UNCHECKED)
    readers = tuple(item.name for item, _ in uses)
    if name in declared:
        return PipelineParam(name, _default(declared[name]), hint, readers)
    with_default = [(item, p) for item, p in uses if p.default is not MISSING]
    if not with_default:
        item, parameter = uses[0]
        raise PipelineError(_missing_input(item, parameter) + suggest(name, producers))
    first_step, first = with_default[0]
    for item, parameter in with_default[1:]:
        if not _same(first.default, parameter.default):
            raise PipelineError(
                f"Parameter {name!r} has the default {parameter.default!r} in {item.where} "
                f"but {first.default!r} in {first_step.where}. Declare one default for the "
                f"pipeline: Pipeline(..., params={{{name!r}: ...}})."
            )
    return PipelineParam(name, first.default, hint, readers)


def _default(value: Any) -> Any:
    return MISSING if value is REQUIRED else value


def _same(left: Any, right: Any) -> bool:
    try:
        return left is right or bool(left == right)
    except Exception:
        return False


def _missing_input(item: Step, parameter: Parameter) -> str:
    return (
        f"{item.where.capitalize()} takes {parameter.source!r}, which no step returns and "
        "which has no default. Give it a default, declare it with Pipeline(..., "
        f"params={{{parameter.source!r}: ...}}) to require it at run time, or wire it to "
        f"another step's output: step({item.name}, inputs={{{parameter.name!r}: '...'}})."
    )


def _check_edges(steps: tuple[Step, ...], producers: dict[str, Step]) -> None:
    for item in steps:
        for parameter in item.parameters:
            producer = producers.get(parameter.source)
            if producer is None:
                continue
            produced = producer.output_types[producer.outputs.index(parameter.source)]
            if not compatible(produced, parameter.hint):
                raise PipelineError(
                    f"{item.where.capitalize()} takes {parameter.name}: "
                    f"{describe(parameter.hint)}, but {producer.where} returns "
                    f"{parameter.source}: {describe(produced)}."
                )


def _order(steps: tuple[Step, ...], producers: dict[str, Step]) -> tuple[Step, ...]:
    graph = {
        item.name: [producers[p.source].name for p in item.parameters if p.source in producers]
        for item in steps
    }
    sorter = graphlib.TopologicalSorter(graph)
    try:
        names = list(sorter.static_order())
    except graphlib.CycleError as error:
        raise PipelineError(_cycle(error.args[1], {s.name: s for s in steps})) from None
    position = {item.name: index for index, item in enumerate(steps)}
    by_name = {item.name: item for item in steps}
    return tuple(by_name[name] for name in _stable(names, graph, position))


def _stable(names: list[str], graph: dict[str, list[str]], position: dict[str, int]) -> list[str]:
    """A topological order that keeps the declaration order wherever the edges allow."""
    done: set[str] = set()
    ordered: list[str] = []
    pending = sorted(names, key=position.__getitem__)
    while pending:
        ready = next(name for name in pending if all(up in done for up in graph[name]))
        pending.remove(ready)
        done.add(ready)
        ordered.append(ready)
    return ordered


def _cycle(names: list[str], steps: dict[str, Step]) -> str:
    path = " → ".join(f"{steps[name].name} ({steps[name].location})" for name in reversed(names))
    return f"The steps form a cycle: {path}. A step cannot read, even indirectly, what it returns."


def suggest(name: str, options: Iterable[str]) -> str:
    """' Did you mean 'x'?' when a close match exists."""
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
