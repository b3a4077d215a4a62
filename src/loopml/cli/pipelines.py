"""`loopml run ...` and `loopml sweep ...`: run, resume and sweep pipelines."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import render
from loopml.errors import StepFailedError, UsageError

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A parameter as name=value; repeat for more."),
]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="inline, process, process:N, dask or dask://host:8786 (default: the "
        "'executor' setting).",
    ),
]
STATUS_STYLES = {
    "ran": "green",
    "cached": "cyan",
    "reused": "cyan",
    "failed": "bold red",
    "skipped": "dim",
    "pruned": "yellow",
}


def run(
    target: Annotated[
        str,
        typer.Argument(
            help="The pipeline as module:attribute (my_project.pipelines:train), or 'resume'."
        ),
    ],
    run_id: Annotated[
        str | None, typer.Argument(help="With 'resume': the failed or killed pipeline run.")
    ] = None,
    param: ParamOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, ignoring cached outputs.")
    ] = False,
    executor: ExecutorOption = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment of the run.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed recorded with the run.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline as a tracked run (one child run per step), or resume a failed one.

    loopml run my_project.pipelines:train --param max_depth=6

    loopml run resume RUN_ID
    """
    from loopml.pipeline.loading import load_pipeline
    from loopml.pipeline.params import parse_assignments

    try:
        if target == "resume":
            result = _resume(run_id, param, no_cache, executor)
        else:
            if run_id is not None:
                raise UsageError(
                    f"Unexpected argument {run_id!r}: parameters go as --param name=value."
                )
            pipeline = load_pipeline(target)
            values = parse_assignments(pipeline, param or [])
            result = pipeline.run(
                values, cache=not no_cache, executor=executor, experiment=experiment, seed=seed
            )
    except StepFailedError as error:
        if error.result is not None:
            _print_result(error.result, as_json)
        raise
    _print_result(result, as_json)


def _resume(run_id: str | None, param: list[str] | None, no_cache: bool, executor: str | None):
    import loopml
    from loopml.pipeline.loading import load_pipeline

    if run_id is None:
        raise UsageError("Name the run to resume: loopml run resume RUN_ID.")
    if param or no_cache:
        raise UsageError(
            "A resumed run keeps the parameters and cache setting of the run it resumes; "
            "drop --param and --no-cache, or start a new run."
        )
    record = loopml.get_run(run_id)
    ref = record.tags.get("loopml.pipeline", "")
    if ":" not in ref:
        raise UsageError(
            f"Run {record.id} was started from Python, not from an importable pipeline "
            f"({ref or 'unknown'}); resume it there: pipeline.resume({record.id!r})."
        )
    return load_pipeline(ref).resume(record.id, executor=executor)


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        render.print_json(result.to_dict())
        return
    out = render.console()
    table = Table("step", "status", "seconds", "attempts", "run", box=None, header_style="bold")
    for report in result.steps:
        table.add_row(
            report.name,
            Text(report.status, style=STATUS_STYLES.get(report.status, "")),
            f"{report.seconds:.3f}" if report.status in ("ran", "failed", "pruned") else "-",
            str(report.attempts) if report.attempts else "-",
            report.run_id or "-",
        )
    out.print(table)
    cached = len(result.cached)
    out.print(
        f"Pipeline run {result.run_id} {result.status} in {result.seconds:.2f} s; "
        f"{cached} of {len(result.steps)} steps from cache."
    )


def sweep(
    target: Annotated[str, typer.Argument(help="The pipeline as module:attribute.")],
    space: Annotated[
        str, typer.Option("--space", help="The search space: a YAML file (see docs/pipelines.md).")
    ],
    metric: Annotated[
        str, typer.Option("--metric", help="The metric a step logs, to optimise (val_auc).")
    ],
    direction: Annotated[
        str, typer.Option("--direction", help="max or min: which values of the metric are better.")
    ] = "max",
    trials: Annotated[int, typer.Option("--trials", help="How many trials to run.")] = 50,
    parallel: Annotated[
        int, typer.Option("--parallel", help="How many trials run at the same time.")
    ] = 1,
    param: ParamOption = None,
    executor: ExecutorOption = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the sampler (and of each trial's run).")
    ] = None,
    no_prune: Annotated[
        bool, typer.Option("--no-prune", help="Run every trial to the end.")
    ] = False,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment of the runs.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search a pipeline's parameters with Optuna (TPE, pruning of bad trials).

    loopml sweep my_project.pipelines:train --space space.yaml --trials 50 --parallel 4
    --metric val_auc --direction max
    """
    from loopml.pipeline.loading import load_pipeline
    from loopml.pipeline.params import parse_assignments
    from loopml.pipeline.sweep import sweep as run_sweep

    pipeline = load_pipeline(target)
    try:
        result = run_sweep(
            pipeline,
            space,
            metric=metric,
            direction=direction,
            trials=trials,
            parallel=parallel,
            params=parse_assignments(pipeline, param or []),
            executor=executor,
            seed=seed,
            prune=not no_prune,
            experiment=experiment,
        )
    except StepFailedError as error:
        if error.result is not None:
            _print_sweep(error.result, as_json)
        raise
    _print_sweep(result, as_json)


def _print_sweep(result: Any, as_json: bool, shown: int = 10) -> None:
    if as_json:
        render.print_json(result.to_dict())
        return
    out = render.console()
    complete = sorted(
        (t for t in result.trials if t.state == "complete"),
        key=lambda t: t.value,
        reverse=result.direction == "maximize",
    )
    table = Table("trial", result.metric, "params", "run", box=None, header_style="bold")
    for trial in complete[:shown]:
        params = ", ".join(f"{k}={render.value(v)}" for k, v in trial.params.items())
        table.add_row(str(trial.number), f"{trial.value:.6g}", params, trial.run_id or "-")
    out.print(table)
    states = result.to_dict()["states"]
    out.print(
        f"Sweep run {result.run_id}: {states['complete']} complete, {states['pruned']} pruned, "
        f"{states['failed']} failed in {result.seconds:.1f} s."
    )
    best = result.best
    if best is not None:
        out.print(
            f"Best: trial {best.number}, {result.metric} = {best.value:.6g} (run {best.run_id})"
        )
        command = result.command()
        if command:
            out.print(f"Run it again: {command}")
