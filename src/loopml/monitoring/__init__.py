"""Monitoring: how a deployment's traffic compares with what its model was trained on."""

from __future__ import annotations

from loopml.monitoring.drift import DriftReport, FeatureDrift, drift

__all__ = ["DriftReport", "FeatureDrift", "drift"]
