"""loopml: run machine learning in production as a loop.

    import loopml
    with loopml.start_run(experiment="flights", params={"lr": 0.1}, seed=7) as run:
        run.log_metric("loss", 0.31)

Importing loopml is cheap and has no side effects: names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.lazy import lazy_attributes

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ArtifactRecord": "loopml.store.records",
    "Estimate": "loopml.evaluation.evaluate",
    "Evaluation": "loopml.evaluation.evaluate",
    "ExperimentRecord": "loopml.store.records",
    "LoopmlError": "loopml.errors",
    "MetricPoint": "loopml.store.records",
    "MetricSummary": "loopml.store.records",
    "Pipeline": "loopml.pipeline.graph",
    "PipelineResult": "loopml.pipeline.result",
    "Run": "loopml.tracking.run",
    "RunRecord": "loopml.store.records",
    "Settings": "loopml.settings",
    "StepContext": "loopml.pipeline.context",
    "Workspace": "loopml.workspace",
    "active_run": "loopml.tracking.context",
    "child_runs": "loopml.tracking.api",
    "current_workspace": "loopml.workspace",
    "download_artifact": "loopml.tracking.api",
    "evaluate": "loopml.evaluation.evaluate",
    "get_run": "loopml.tracking.api",
    "lineage": "loopml.tracking.api",
    "list_artifacts": "loopml.tracking.api",
    "list_experiments": "loopml.tracking.api",
    "load_artifact": "loopml.tracking.api",
    "load_settings": "loopml.settings",
    "metric_history": "loopml.tracking.api",
    "metric_summaries": "loopml.tracking.api",
    "open_workspace": "loopml.workspace",
    "register_metric": "loopml.evaluation.catalog",
    "run_environment": "loopml.tracking.api",
    "search_runs": "loopml.tracking.api",
    "start_run": "loopml.tracking.api",
    "step": "loopml.pipeline.step",
    "unregister_metric": "loopml.evaluation.catalog",
    "use_workspace": "loopml.workspace",
}

_MODULES = {
    "data": "loopml.data",
    "loop": "loopml.loop",
    "models": "loopml.registry",
    "monitoring": "loopml.monitoring",
    "serving": "loopml.serving",
}

__all__ = sorted([*_EXPORTS, *_MODULES, "__version__"])


__getattr__ = lazy_attributes(globals(), _EXPORTS, _MODULES)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from loopml import data, loop, monitoring, serving
    from loopml import registry as models
    from loopml.errors import LoopmlError
    from loopml.evaluation.catalog import register_metric, unregister_metric
    from loopml.evaluation.evaluate import Estimate, Evaluation, evaluate
    from loopml.pipeline.context import StepContext
    from loopml.pipeline.graph import Pipeline
    from loopml.pipeline.result import PipelineResult
    from loopml.pipeline.step import step
    from loopml.settings import Settings, load_settings
    from loopml.store.records import (
        ArtifactRecord,
        ExperimentRecord,
        MetricPoint,
        MetricSummary,
        RunRecord,
    )
    from loopml.tracking.api import (
        child_runs,
        download_artifact,
        get_run,
        lineage,
        list_artifacts,
        list_experiments,
        load_artifact,
        metric_history,
        metric_summaries,
        run_environment,
        search_runs,
        start_run,
    )
    from loopml.tracking.context import active_run
    from loopml.tracking.run import Run
    from loopml.workspace import Workspace, current_workspace, open_workspace, use_workspace
