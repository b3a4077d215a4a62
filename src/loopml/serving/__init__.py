"""Serving: one server, three dialects (loopml /predict, MLflow /invocations, Open Inference
Protocol V2), every request checked against the model's contract and every prediction logged
before it is answered; deployments with shadow and canary; batch scoring; feedback.

Names load on first use, so batch scoring does not import the web framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml.lazy import lazy_attributes

_EXPORTS = {
    "BatchResult": "loopml.serving.batch",
    "Canary": "loopml.serving.deployments",
    "Deployment": "loopml.serving.deployments",
    "FeedbackResult": "loopml.serving.feedback",
    "Guardrails": "loopml.serving.deployments",
    "Server": "loopml.serving.app",
    "alerts": "loopml.serving.deployments",
    "create_app": "loopml.serving.app",
    "deploy": "loopml.serving.deployments",
    "deployment": "loopml.serving.deployments",
    "import_feedback": "loopml.serving.feedback",
    "labelled": "loopml.serving.feedback",
    "predict_batch": "loopml.serving.batch",
    "read_deployment": "loopml.serving.deployments",
    "record_feedback": "loopml.serving.feedback",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_attributes(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from loopml.serving.app import Server, create_app
    from loopml.serving.batch import BatchResult, predict_batch
    from loopml.serving.deployments import (
        Canary,
        Deployment,
        Guardrails,
        alerts,
        deploy,
        deployment,
        read_deployment,
    )
    from loopml.serving.feedback import (
        FeedbackResult,
        import_feedback,
        labelled,
        record_feedback,
    )
