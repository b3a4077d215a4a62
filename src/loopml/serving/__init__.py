"""Serving: one server, three dialects (loopml /predict, MLflow /invocations, Open Inference
Protocol V2), every request checked against the model's contract and every prediction logged
before it is answered."""

from __future__ import annotations

from loopml.serving.app import Server, create_app

__all__ = ["Server", "create_app"]
