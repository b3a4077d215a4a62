"""Numbers in words, in each metric's own direction: every check, card and message says
"better" and "worse" the way the metric means it (an MAE that falls improves); numbers print
as loopml.numbers.number does (never "-0")."""

from __future__ import annotations

from typing import Any

from loopml.evaluation.catalog import higher_is_better
from loopml.numbers import number

__all__ = ["better_or_worse", "direction", "improvement", "interval", "number"]


def interval(value: Any, low: Any, high: Any) -> str:
    """'value [low, high]'."""
    return f"{number(value)} [{number(low)}, {number(high)}]"


def improvement(metric: str, value: float, low: float, high: float) -> tuple[float, float, float]:
    """A difference (new − old) as an improvement in the metric's direction, with its
    interval: unchanged for metrics where higher is better, negated (and its bounds swapped)
    where lower is better."""
    if higher_is_better(metric):
        return value, low, high
    return -value, -high, -low


def better_or_worse(metric: str, new: float, old: float) -> str:
    """'better', 'worse' or 'equal': new against old, in the metric's direction."""
    if new == old:
        return "equal"
    return "better" if (new > old) == higher_is_better(metric) else "worse"


def direction(metric: str) -> str:
    """'higher is better' or 'lower is better'."""
    return "higher is better" if higher_is_better(metric) else "lower is better"
