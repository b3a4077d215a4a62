"""Fixtures of the loop's tests: the tiny pipeline importable by its module path, an endpoint
whose champion it trained, gates that let a candidate in or keep it out, and policies.

- ``tiny``: the fixture module tiny_pipeline.py, importable as ``tiny_pipeline:train``.
- ``endpoint``: "tiny", champion = version 1 (trained on January and February 2013), with a
  reference; nothing deployed yet.
- ``policy(**changes)``: a retraining policy (a dict, gate paths relative to the test folder)
  that retrains on an open ``rule:drift`` alert, with the lenient gate and no refit, changed
  as given.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).parent
# The candidate retrained on May (validated on June) against the January-February champion,
# on June: the lenient gate wants it no worse and decent; nothing can pass the strict one.
LENIENT = """\
target: y
resamples: 50
checks:
  - {check: difference, metric: roc_auc, lower_bound_above: 0}
  - {check: metric, metric: roc_auc, lower_bound_above: 0.7}
"""
STRICT = """\
target: y
resamples: 50
checks:
  - {check: metric, metric: roc_auc, lower_bound_above: 0.999}
"""
POLICY: dict[str, Any] = {
    "retrain": {
        "pipeline": "tiny_pipeline:train",
        "params": {
            "train_from": "$window_start",
            "split_at": "$validation_start",
            "data_end": "$data_end",
        },
        "window": "2 months",
        "validation": "1 month",
        "reference": "train_rows",
        "target": "y",
    },
    "refit": {"enabled": False},  # the refit's own tests turn it on
    "triggers": {"alerts": ["drift"]},
    "gate": "lenient_gate.yaml",
    "rollout": {
        "shadow_requests": 4,
        "canary_fraction": 0.5,
        "canary_requests": 4,
        "guardrails": {"min_requests": 4, "max_latency_ratio": None, "max_prediction_psi": None},
    },
}


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The tiny pipeline's module, importable by the loop as ``tiny_pipeline``."""
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("tiny_pipeline")


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    """lenient_gate.yaml and strict_gate.yaml in the test's folder (the working one)."""
    (tmp_path / "lenient_gate.yaml").write_text(LENIENT)
    (tmp_path / "strict_gate.yaml").write_text(STRICT)
    return tmp_path


@pytest.fixture
def endpoint(sqlite_workspace, tiny: ModuleType, gates: Path) -> str:
    """The endpoint "tiny", its champion version 1 trained by the tiny pipeline."""
    assert tiny.champion("tiny") == 1
    return "tiny"


@pytest.fixture
def policy() -> Callable[..., dict[str, Any]]:
    """POLICY with top-level sections changed: policy(cooldown="20d", gate="strict_gate.yaml");
    a dict for a section replaces the keys it names."""

    def make(**changes: Any) -> dict[str, Any]:
        found = copy.deepcopy(POLICY)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(found.get(key), dict):
                found[key] = {**found[key], **value}
            else:
                found[key] = value
        return found

    return make
