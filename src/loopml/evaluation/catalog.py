"""The catalog of metrics: every metric loopml measures, its task and its direction, and the
metrics users register by name.

    import numpy as np
    import loopml

    def within_ten(y, score, weight):          # share of predictions within 10 units
        return np.sum(weight * (np.abs(score - y) <= 10)) / np.sum(weight)

    loopml.register_metric("within_10", within_ten, task="regression", higher_is_better=True)

A registered metric is computed wherever a built-in one is: ``evaluate``, every monitored
window (with its interval, per version), alert rules, gates and canary guardrails. It sees the
same Poisson bootstrap weights as the built-ins, so differences against a baseline or the
champion are paired. ``y`` is the target (0/1 for a classifier), ``score`` the model's score
(the positive class's probability, or the prediction), ``weight`` one resample's weights per
row; with ``vectorised=True`` the function gets a ``(resamples, rows)`` block of weights and
returns one value per resample.

A process that monitors or serves (a scheduler, a model server) registers the metrics it needs
by importing the modules named in the ``metric_modules`` setting before it looks a metric up.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.errors import UsageError

TASKS = ("classification", "regression")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Metric:
    """One metric: its task, whether larger is better, and (for a user's metric) how to
    compute it from (y, score, weight)."""

    name: str
    task: str
    higher_is_better: bool
    description: str = ""
    function: Callable[[np.ndarray, np.ndarray, np.ndarray], Any] | None = None
    vectorised: bool = False

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def of(self, truth: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A user's metric for each row of a ``(resamples, rows)`` block of weights."""
        block = weights.astype(np.float64)
        if self.vectorised:
            found = np.asarray(self.function(truth, score, block), dtype=np.float64).reshape(-1)
        else:
            found = np.array([_number(self.function(truth, score, row)) for row in block])
        if found.shape != (len(block),):
            raise UsageError(
                f"Metric {self.name!r} gave {found.size} values for {len(block)} resamples; a "
                "vectorised metric returns one value per row of weights."
            )
        return found


def _number(value: Any) -> float:
    return float(np.asarray(value, dtype=np.float64))


BUILTIN = (
    Metric("roc_auc", "classification", True, "area under the ROC curve"),
    Metric("log_loss", "classification", False, "mean negative log-likelihood"),
    Metric("brier", "classification", False, "mean squared error of the probability"),
    Metric("accuracy", "classification", True, "share of rows classified right"),
    Metric("precision", "classification", True, "share of chosen rows that are positive"),
    Metric("recall", "classification", True, "share of positive rows chosen"),
    Metric("f1", "classification", True, "harmonic mean of precision and recall"),
    Metric("ece", "classification", False, "expected calibration error (10 bins)"),
    Metric("mae", "regression", False, "mean absolute error"),
    Metric("rmse", "regression", False, "root mean squared error"),
    Metric("r2", "regression", True, "coefficient of determination"),
    Metric("mape", "regression", False, "mean absolute percentage error (a share)"),
)
_CATALOG: dict[str, Metric] = {metric.name: metric for metric in BUILTIN}
_loaded_modules: set[str] = set()
_settings_read = False


def register_metric(
    name: str,
    function: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    *,
    task: str,
    higher_is_better: bool,
    vectorised: bool = False,
    description: str = "",
    replace: bool = False,
) -> Metric:
    """Register a metric by name, a function of (y, score, weight), for one task."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(
            f"A metric's name starts with a letter and holds letters, digits, '_', '.' or '-' "
            f"(at most 64), not {name!r}."
        )
    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, not {task!r}.")
    if not callable(function):
        raise UsageError(f"Metric {name!r} needs a function of (y, score, weight).")
    known = _CATALOG.get(name)
    if known is not None and (known.function is None or not replace):
        what = "a built-in metric" if known.function is None else "registered already"
        hint = "" if known.function is None else " Pass replace=True to redefine it."
        raise UsageError(f"Metric {name!r} is {what}.{hint}")
    metric = Metric(name, task, bool(higher_is_better), description, function, vectorised)
    _CATALOG[name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Forget a user's metric (built-in ones stay)."""
    known = _CATALOG.get(name)
    if known is not None and known.function is not None:
        del _CATALOG[name]


def metric_names(task: str | None = None, *, builtin_only: bool = False) -> tuple[str, ...]:
    """The metrics of a task (every task when None), built-in ones first."""
    if not _settings_read:
        _load_modules()
    return tuple(
        m.name
        for m in _CATALOG.values()
        if (task is None or m.task == task) and not (builtin_only and m.function is not None)
    )


def find_metric(name: str) -> Metric | None:
    """A metric by name, or None."""
    if name not in _CATALOG:
        _load_modules()
    return _CATALOG.get(name)


def get_metric(name: str, task: str | None = None) -> Metric:
    """A metric by name (of a task, when given); an error lists the known ones."""
    found = find_metric(name)
    if found is not None and (task is None or found.task == task):
        return found
    known = metric_names(task)
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    what = f"{task} metric" if task else "metric"
    raise UsageError(
        f"Unknown {what} {name!r}.{hint} Known: {', '.join(known)}. Register your own with "
        "loopml.register_metric."
    )


def higher_is_better(metric: str) -> bool:
    """Whether larger values of a metric are better (unknown names count as higher)."""
    found = find_metric(metric)
    return True if found is None else found.higher_is_better


def _load_modules() -> None:
    """Import the modules of the ``metric_modules`` setting, once each, so the metrics they
    register are known in this process."""
    from loopml.settings import load_settings

    global _settings_read
    _settings_read = True
    names = [m.strip() for m in load_settings().metric_modules.split(",") if m.strip()]
    for module in names:
        if module in _loaded_modules:
            continue
        _loaded_modules.add(module)
        try:
            importlib.import_module(module)
        except ImportError as error:
            from loopml.errors import ConfigError

            _loaded_modules.discard(module)
            raise ConfigError(
                f"The metric_modules setting names {module!r}, which does not import: {error}. "
                "Fix LOOPML_METRIC_MODULES or metric_modules in loopml.toml."
            ) from None
