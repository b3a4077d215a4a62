"""Sweeps: Optuna's TPE sampler over a search space, each trial a pipeline run nested under
the sweep's run, trials running side by side on the chosen executor, bad trials pruned.

Steps the trials share (loading and preparing data, say) run once and come from the cache
afterwards, since their code, parameters and inputs do not change between trials.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import ParameterError, StepFailedError, UsageError
from loopml.pipeline.executors import Executor, executor_from
from loopml.pipeline.graph import Pipeline
from loopml.pipeline.params import bind, display
from loopml.pipeline.progress import count_progress
from loopml.pipeline.pruning import median_rule
from loopml.pipeline.runner import run_pipeline
from loopml.pipeline.space import SearchSpace, load_space
from loopml.tracking.api import get_run, start_run
from loopml.tracking.run import Run
from loopml.workspace import Workspace, current_workspace

DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


@dataclass
class TrialReport:
    """One trial: complete (with its value), pruned, or failed (with why)."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    run_id: str | None = None
    seconds: float = 0.0
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "value": self.value,
            "params": {key: display(value) for key, value in self.params.items()},
            "run_id": self.run_id,
            "seconds": round(self.seconds, 6),
            "message": self.message,
        }


@dataclass
class SweepResult:
    """Every trial of a sweep, the best one, and how to run it again."""

    run_id: str
    pipeline: str
    ref: str | None
    metric: str
    direction: str
    fixed: dict[str, Any]
    trials: list[TrialReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best(self) -> TrialReport | None:
        """The complete trial with the best value, or None when none completed."""
        complete = [t for t in self.trials if t.state == "complete"]
        if not complete:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(complete, key=lambda t: (t.value, -t.number))

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's parameters, with the sweep's fixed ones."""
        best = self.best
        return {**self.fixed, **(best.params if best else {})}

    def command(self) -> str | None:
        """The command that runs the pipeline with the best parameters."""
        if self.best is None or self.ref is None:
            return None
        parts = ["loopml", "run", self.ref]
        for key, value in self.best_params.items():
            parts += ["--param", f"{key}={_cli_value(value)}"]
        return shlex.join(parts)

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "metric": self.metric,
            "direction": self.direction,
            "seconds": round(self.seconds, 6),
            "best": best.to_dict() if best else None,
            "command": self.command(),
            "states": {s: sum(t.state == s for t in self.trials) for s in _STATES},
            "trials": [t.to_dict() for t in sorted(self.trials, key=lambda t: t.number)],
        }


_STATES = ("complete", "pruned", "failed")


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(getattr(value, "ref", value))


def sweep(
    pipeline: Pipeline,
    space: SearchSpace | str | Path | dict[str, Any],
    *,
    metric: str,
    direction: str = "maximize",
    trials: int = 50,
    parallel: int = 1,
    params: Mapping[str, Any] | None = None,
    executor: Executor | str | None = None,
    seed: int | None = None,
    prune: bool = True,
    experiment: str | None = None,
    workspace: Workspace | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Search a pipeline's parameters with Optuna (TPE) for the best value of a metric the
    pipeline logs (a step's ``context.log_metric``). Each trial is a pipeline run nested
    under the sweep run; up to ``parallel`` trials run at once on the executor."""
    workspace = workspace or current_workspace()
    direction = _direction(direction)
    _check_counts(trials, parallel)
    space = space if isinstance(space, SearchSpace) else load_space(space, pipeline)
    fixed = _fixed(pipeline, space, params or {}, workspace)
    chosen, owned = executor_from(executor or workspace.settings.executor)
    try:
        driver = _Sweep(pipeline, space, fixed, metric, direction, chosen, seed, prune, workspace)
        return driver.run(trials, parallel, experiment, progress)
    finally:
        if owned:
            chosen.shutdown()


def _direction(text: str) -> str:
    found = DIRECTIONS.get(str(text).lower())
    if found is None:
        raise UsageError(f"The direction must be max or min, not {text!r}.")
    return found


def _check_counts(trials: int, parallel: int) -> None:
    for name, value in (("trials", trials), ("parallel", parallel)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(
                f"A sweep's {name} must be a whole number of at least 1, not {value!r}."
            )


def _fixed(
    pipeline: Pipeline, space: SearchSpace, params: Mapping[str, Any], workspace: Workspace
) -> dict[str, Any]:
    both = sorted(set(params) & set(space.root))
    if both:
        raise ParameterError(
            f"{', '.join(map(repr, both))} is both fixed (--param) and searched (the space); "
            "drop one of them."
        )
    bind(pipeline, dict(params), workspace)  # unknown names and bad values fail here, once
    return dict(params)


class _Sweep:
    def __init__(
        self,
        pipeline: Pipeline,
        space: SearchSpace,
        fixed: dict[str, Any],
        metric: str,
        direction: str,
        executor: Executor,
        seed: int | None,
        prune: bool,
        workspace: Workspace,
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.pipeline = pipeline
        self.distributions = space.distributions()
        self.space = space
        self.fixed = fixed
        self.metric = metric
        self.direction = direction
        self.executor = executor
        self.seed = seed
        self.prune = prune
        self.workspace = workspace
        sampler = optuna.samplers.TPESampler(seed=seed)
        self.study = optuna.create_study(direction=direction, sampler=sampler)
        self.run_record: Run | None = None

    def run(
        self, trials: int, parallel: int, experiment: str | None, progress: bool | None
    ) -> SweepResult:
        started = time.perf_counter()
        with start_run(
            experiment,
            name=f"sweep:{self.pipeline.name}",
            params={
                "trials": trials,
                "parallel": parallel,
                "metric": self.metric,
                "direction": self.direction,
                **{key: display(value) for key, value in self.fixed.items()},
            },
            tags={
                "loopml.kind": "sweep",
                "loopml.pipeline": self.pipeline.ref or self.pipeline.name,
                "loopml.executor": self.executor.name,
            },
            seed=self.seed,
            workspace=self.workspace,
        ) as run:
            self.run_record = run
            run.log_artifact(self.space.model_dump(), name="search_space")
            result = SweepResult(
                run.id,
                self.pipeline.name,
                self.pipeline.ref,
                self.metric,
                self.direction,
                self.fixed,
            )
            self._trials(result, trials, parallel, progress)
            self._record_best(run, result)
        result.seconds = time.perf_counter() - started
        if result.best is None:
            raise StepFailedError(
                f"No trial of sweep run {result.run_id} completed: {_why(result)}",
                run_id=result.run_id,
                result=result,
            )
        return result

    def _trials(
        self, result: SweepResult, trials: int, parallel: int, progress: bool | None
    ) -> None:
        label = f"sweep {self.pipeline.name}"
        with (
            ThreadPoolExecutor(parallel) as pool,
            count_progress(label, trials, progress) as advance,
        ):
            futures = [pool.submit(self._trial) for _ in range(trials)]
            try:
                for future in as_completed(futures):
                    result.trials.append(future.result())
                    advance(self._detail(result))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _detail(self, result: SweepResult) -> str:
        best = result.best
        return "" if best is None else f"best {self.metric}={best.value:.6g}"

    def _trial(self) -> TrialReport:
        from optuna.trial import TrialState

        trial = self.study.ask(self.distributions)
        rule = median_rule(self.study) if self.prune else None
        report = TrialReport(trial.number, "failed", dict(trial.params))
        started = time.perf_counter()
        try:
            outcome = run_pipeline(
                self.pipeline,
                {**self.fixed, **trial.params},
                executor=self.executor,
                experiment=self.run_record.experiment,
                seed=self.seed,
                workspace=self.workspace,
                progress=False,
                pruning=rule,
                parent=self.run_record,
                tags={"loopml.trial": trial.number},
            )
        except StepFailedError as error:
            report.run_id, report.message = error.run_id, str(error).split(" Pipeline run ")[0]
            self.study.tell(trial, state=TrialState.FAIL)
            return self._timed(report, started)
        report.run_id = outcome.run_id
        for step, value in _last_per_step(outcome.intermediate):
            trial.report(value, step)
        if outcome.status == "pruned":
            report.state = "pruned"
            self.study.tell(trial, state=TrialState.PRUNED)
            return self._timed(report, started)
        return self._timed(self._complete(trial, report), started)

    def _complete(self, trial: Any, report: TrialReport) -> TrialReport:
        from optuna.trial import TrialState

        metrics = get_run(report.run_id, workspace=self.workspace).metrics
        value = metrics.get(self.metric)
        if value is None:
            known = ", ".join(sorted(k for k in metrics if not k.startswith("loopml."))) or "none"
            report.message = (
                f"pipeline run {report.run_id} logged no metric {self.metric!r} (it logged: "
                f"{known}); log it in a step with context.log_metric({self.metric!r}, value)"
            )
            self.study.tell(trial, state=TrialState.FAIL)
            return report
        report.state, report.value = "complete", float(value)
        self.study.tell(trial, report.value)
        return report

    @staticmethod
    def _timed(report: TrialReport, started: float) -> TrialReport:
        report.seconds = time.perf_counter() - started
        return report

    def _record_best(self, run: Run, result: SweepResult) -> None:
        for state in _STATES:
            run.log_metric(f"trials.{state}", sum(t.state == state for t in result.trials))
        best = result.best
        if best is None:
            return
        run.log_metric(f"best.{self.metric}", best.value)
        run.set_tags({"loopml.best_run": best.run_id, "loopml.best_trial": best.number})


def _last_per_step(reports: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(dict(reports).items())


def _why(result: SweepResult) -> str:
    failed = [t for t in result.trials if t.state == "failed"]
    if failed:
        return f"{len(failed)} failed; the first: {failed[0].message}"
    return "every trial was pruned"
