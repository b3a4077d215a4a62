"""Evaluation: metrics with bootstrap confidence intervals, against baselines on the same rows
(paired), by slice, and across sensitive groups.

    import loopml
    found = loopml.evaluate(model, valid_rows, target="delayed",
                            baselines={"prior": prior, "rule": lambda f: f.dep_hour > 17},
                            slices=["carrier", "origin"], sensitive=["origin"])
    found.metrics["roc_auc"]            # Estimate(value, low, high)
    found.differences["prior"]["roc_auc"]
"""

from __future__ import annotations

from loopml.evaluation.evaluate import Estimate, Evaluation, evaluate
from loopml.evaluation.fairness import Fairness
from loopml.evaluation.slices import Slice
from loopml.evaluation.step import evaluation_step

__all__ = ["Estimate", "Evaluation", "Fairness", "Slice", "evaluate", "evaluation_step"]
