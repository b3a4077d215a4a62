"""A ready-made pipeline step that evaluates a model with intervals and logs the results.

    from loopml.evaluation import evaluation_step

    train = Pipeline([..., model, baseline,
                      evaluation_step(target="delayed", data="valid_rows",
                                      baselines={"prior": "baseline"},
                                      slices=["carrier", "origin"])])

The step reads the model and each baseline from the outputs of the names given, evaluates on
the rows of ``data``, logs ``{prefix}_{metric}`` with ``_low`` and ``_high`` (and the paired
difference to each baseline as ``{prefix}_{metric}_vs_{baseline}``), and returns the
Evaluation, so a model registered from the run gets it on its card.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.evaluation.evaluate import Estimate, Evaluation, evaluate
from loopml.hashing import sha256_json
from loopml.pipeline.context import StepContext
from loopml.pipeline.step import Step, make_step


def evaluation_step(
    *,
    target: str,
    model: str = "model",
    data: str = "valid_rows",
    baselines: Mapping[str, str] | None = None,
    slices: Sequence[str] | Mapping[str, int] | None = None,
    sensitive: Sequence[str] | None = None,
    task: str = "classification",
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    prefix: str = "val",
    name: str = "evaluation",
) -> Step:
    """A step named ``name`` that evaluates the output ``model`` on the output ``data``
    against the outputs named in ``baselines`` ({label: output name})."""
    baselines = dict(baselines or {})
    options = {
        "target": target,
        "task": task,
        "slices": slices if isinstance(slices, Mapping) else list(slices or []) or None,
        "sensitive": list(sensitive or []) or None,
        "metrics": list(metrics) if metrics else None,
        "resamples": resamples,
        "level": level,
    }

    def run(**inputs: Any) -> Evaluation:
        context: StepContext = inputs.pop("context")
        found = evaluate(
            inputs[model],
            inputs[data],
            baselines={label: inputs[source] for label, source in baselines.items()},
            seed=context.seed or 0,
            **options,
        )
        context.log_metrics(_logged(found, prefix))
        return found

    names = list(dict.fromkeys([model, data, *baselines.values()]))
    parameters = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    parameters.append(
        inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=StepContext)
    )
    run.__signature__ = inspect.Signature(parameters, return_annotation=Evaluation)
    run.__annotations__ = {"context": StepContext, "return": Evaluation}
    run.__name__ = name
    settings = {
        "options": options,
        "model": model,
        "data": data,
        "baselines": baselines,
        "prefix": prefix,
    }
    return make_step(run, name=name, version=sha256_json(settings))


def _logged(found: Evaluation, prefix: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric, estimate in found.metrics.items():
        values |= _bounds(f"{prefix}_{metric}", estimate)
    for label, differences in found.differences.items():
        for metric, estimate in differences.items():
            values |= _bounds(f"{prefix}_{metric}_vs_{label}", estimate)
    return {key: value for key, value in values.items() if math.isfinite(value)}


def _bounds(key: str, estimate: Estimate) -> dict[str, float]:
    return {key: estimate.value, f"{key}_low": estimate.low, f"{key}_high": estimate.high}
