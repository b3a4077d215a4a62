"""Pipelines: typed steps wired into a DAG by name, run as tracked, content-cached runs on an
inline, process-pool or Dask executor, and swept with Optuna.

    from loopml.pipeline import Pipeline, step

    @step
    def features(flights: Snapshot) -> pd.DataFrame: ...

    @step(retries=2)
    def model(features: pd.DataFrame, max_depth: int = 6) -> Classifier: ...

    result = Pipeline([features, model]).run(params={"max_depth": 8})
    result["model"]
"""

from __future__ import annotations

from loopml.pipeline.context import StepContext
from loopml.pipeline.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    executor_from,
)
from loopml.pipeline.graph import REQUIRED, Pipeline
from loopml.pipeline.loading import load_pipeline
from loopml.pipeline.result import PipelineResult, StepReport
from loopml.pipeline.step import Step, step

__all__ = [
    "REQUIRED",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "Pipeline",
    "PipelineResult",
    "ProcessExecutor",
    "Step",
    "StepContext",
    "StepReport",
    "executor_from",
    "load_pipeline",
    "step",
]
