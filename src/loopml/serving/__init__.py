"""Serving: one server, three dialects (loopml /predict, MLflow /invocations, Open Inference
Protocol V2), every request checked against the model's contract and every prediction logged
before it is answered; deployments with shadow and canary; batch scoring; feedback."""

from __future__ import annotations

from loopml.serving.app import Server, create_app
from loopml.serving.batch import BatchResult, predict_batch
from loopml.serving.deployment import (
    Canary,
    Deployment,
    Guardrails,
    alerts,
    deploy,
    deployment,
    read_deployment,
)
from loopml.serving.feedback import FeedbackResult, import_feedback, labelled, record_feedback

__all__ = [
    "BatchResult",
    "Canary",
    "Deployment",
    "FeedbackResult",
    "Guardrails",
    "Server",
    "alerts",
    "create_app",
    "deploy",
    "deployment",
    "import_feedback",
    "labelled",
    "predict_batch",
    "read_deployment",
    "record_feedback",
]
