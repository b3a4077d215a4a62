"""evaluate(): a model's metrics with bootstrap intervals, against baselines on the same rows,
by slice, and across sensitive groups.

One stream of Poisson bootstrap weights serves everything: the model, each baseline, every
slice and every group see the same resample, so differences are paired and intervals of
differences are honest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ColumnNotFoundError, UsageError
from loopml.evaluation import bootstrap
from loopml.evaluation.catalog import get_metric, higher_is_better, metric_names
from loopml.evaluation.fairness import Fairness, GroupRates, group_rates
from loopml.evaluation.metrics import (
    RankedScores,
    check_scores,
    classification_sums,
    classification_values,
    regression_sums,
    regression_values,
)
from loopml.evaluation.scoring import binary_target, scores
from loopml.evaluation.slices import Slice, SliceSpec, slice_rows

PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
TASKS = tuple(PRIMARY)


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the data, with the bootstrap interval around it."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        from loopml.evaluation.wording import interval

        return interval(self.value, self.low, self.high)

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _plain(self.value), "low": _plain(self.low), "high": _plain(self.high)}


def _plain(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


@dataclass
class Evaluation:
    """What evaluate() found: the model's metrics, the baselines', the paired differences,
    slices and fairness, each with its interval."""

    task: str
    rows: int
    level: float
    resamples: int
    seed: int
    threshold: float
    primary: str
    metrics: dict[str, Estimate]
    baselines: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    differences: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    slices: list[Slice] = field(default_factory=list)
    fairness: list[Fairness] = field(default_factory=list)
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of everything."""

        def table(found: Mapping[str, Estimate]) -> dict[str, Any]:
            return {name: estimate.to_dict() for name, estimate in found.items()}

        return {
            "task": self.task,
            "target": self.target,
            "rows": self.rows,
            "level": self.level,
            "resamples": self.resamples,
            "seed": self.seed,
            "threshold": self.threshold,
            "primary": self.primary,
            "metrics": table(self.metrics),
            "baselines": {name: table(found) for name, found in self.baselines.items()},
            "differences": {name: table(found) for name, found in self.differences.items()},
            "slices": [item.to_dict() for item in self.slices],
            "fairness": [item.to_dict() for item in self.fairness],
        }

    def summary(self) -> str:
        """A few lines for a terminal: the primary metric, and its difference to each
        baseline."""
        lines = [f"{self.primary}: {self.metrics[self.primary]} ({self.level:.0%} interval)"]
        for name, found in self.differences.items():
            lines.append(f"  vs {name}: {found[self.primary]}")
        flagged = [s for s in self.slices if s.worse]
        if flagged:
            lines.append(f"  {len(flagged)} slices worse than overall beyond their interval")
        return "\n".join(lines)


def evaluate(
    model: Any,
    data: Any,
    *,
    target: str,
    task: str | None = None,
    baselines: Mapping[str, Any] | None = None,
    slices: Iterable[str | Mapping[str, int | None]] | Mapping[str, int | None] | None = None,
    sensitive: Iterable[str] | None = None,
    threshold: float = 0.5,
    positive: Any = None,
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    min_slice_rows: int = 30,
    workspace: Any = None,
) -> Evaluation:
    """Evaluate a model on data with bootstrap intervals.

    model and each baseline: a fitted model (predict_proba / predict), a function of the rows
    (a one-line rule), or the name of a column of scores. data: a DataFrame, a file, or a
    snapshot reference. task: classification or regression; by default, regression for a
    numeric target with more than 20 distinct values or any fractional one. slices: category
    columns, {numeric column: number of quantile bins}, or a list mixing both. sensitive:
    columns whose groups are compared for fairness. metrics: compute only these (default:
    every metric of the task, registered ones included).
    """
    frame = frame_of(data, workspace)
    if target not in frame.columns:
        raise ColumnNotFoundError(
            f"The data has no target column {target!r}. Its columns: {', '.join(frame.columns)}."
        )
    task = task or infer_task(frame[target])
    _check_options(task, threshold, resamples, level)
    names = _metric_names(task, metrics)
    plan = _Plan(frame, target, task, threshold, positive, names)
    plan.add("model", model)
    for name, baseline in (baselines or {}).items():
        plan.add(f"baseline:{name}", baseline)
    specs = list(_slice_specs(slices, frame))
    for spec in specs:
        for value, rows in slice_rows(frame, spec):
            plan.add_slice(spec, value, rows)
    groups = [group_rates(frame, column, plan.target, task) for column in sensitive or ()]
    found = plan.run(resamples, seed, groups)
    return plan.report(found, level, resamples, seed, groups, min_slice_rows)


def _check_options(task: str, threshold: float, resamples: int, level: float) -> None:
    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, not {task!r}.")
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"threshold must be between 0 and 1, not {threshold}.")
    if not isinstance(resamples, int) or resamples < 10:
        raise UsageError(f"resamples must be a whole number of at least 10, not {resamples!r}.")
    if not 0.5 <= level < 1.0:
        raise UsageError(f"level must be at least 0.5 and below 1 (0.95), not {level}.")


def infer_task(values: pd.Series) -> str:
    """Regression for a numeric target with a fractional value or more than 20 distinct
    values (as the audit decides); classification otherwise."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    present = values.dropna().to_numpy(dtype=np.float64)
    integral = bool(np.all(np.mod(present, 1.0) == 0))
    return "classification" if integral and len(np.unique(present)) <= 20 else "regression"


def _metric_names(task: str, metrics: Sequence[str] | None) -> tuple[str, ...]:
    known = metric_names(task)
    if metrics is None:
        return known
    chosen = tuple(dict.fromkeys(metrics))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise UsageError(
            f"Unknown {task} metrics: {', '.join(map(repr, unknown)) or 'none chosen'}. "
            f"Known: {', '.join(known)}. Register your own with loopml.register_metric."
        )
    return chosen


def frame_of(data: Any, workspace: Any = None) -> pd.DataFrame:
    """Data as a DataFrame: a DataFrame, a file, or a snapshot reference."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    from loopml.data.api import resolve

    resolved = resolve(data, workspace)
    if hasattr(resolved, "to_pandas"):
        return resolved.to_pandas()
    return (
        pd.read_parquet(resolved) if str(resolved).endswith(".parquet") else pd.read_csv(resolved)
    )


def _slice_specs(
    slices: Iterable[str | Mapping[str, int | None]] | Mapping[str, int | None] | None,
    frame: pd.DataFrame,
) -> list[SliceSpec]:
    """Slices as given: a list of column names and {numeric column: bins} mappings, mixed
    freely, or one mapping (None bins: a category column)."""
    if slices is None:
        return []
    if isinstance(slices, str):
        slices = [slices]
    items: list[tuple[Any, Any]] = []
    for item in [slices] if isinstance(slices, Mapping) else slices:
        if isinstance(item, Mapping):
            items.extend(item.items())
        elif isinstance(item, str):
            items.append((item, None))
        else:
            raise UsageError(
                f"A slice is a column name or {{column: number of bins}}, not {item!r}."
            )
    specs = []
    for column, bins in items:
        if column not in frame.columns:
            raise ColumnNotFoundError(f"There is no column {column!r} to slice by.")
        if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 2):
            raise UsageError(
                f"Slice {column!r} asks for {bins!r} bins; give a whole number of at least 2."
            )
        specs.append(SliceSpec(column, bins))
    return specs


class _Subject:
    """One thing measured on some rows: the model, a baseline, or the model on a slice."""

    def __init__(
        self,
        task: str,
        truth: np.ndarray,
        score: np.ndarray,
        threshold: float,
        names: Sequence[str],
    ) -> None:
        self.task, self.names = task, names
        self.truth, self.score = truth.astype(np.float64), score
        self.custom = [m for m in map(get_metric, names) if m.function is not None]
        self.ranked, self.sums = None, None
        ranked = task == "classification" and "roc_auc" in names
        if ranked and truth.any() and not truth.all():
            self.ranked = RankedScores(truth, score)
        if task == "regression":
            self.sums = regression_sums(truth, score)
        elif any(name != "roc_auc" for name in names):
            self.sums = classification_sums(truth, score, threshold)

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        found = self._builtin(weights)
        for metric in self.custom:
            found[metric.name] = metric.of(self.truth, self.score, weights)
        return found

    def _builtin(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        if self.task == "regression":
            return regression_values(self.sums.of(weights))
        found = classification_values(self.sums.of(weights)) if self.sums is not None else {}
        if self.ranked is not None:
            found["roc_auc"] = self.ranked.auc(weights)
        elif "roc_auc" in self.names:
            found["roc_auc"] = np.full(len(weights), np.nan)
        return found


class _Plan:
    """Everything to measure, each as a subject over some rows, run on one weight stream."""

    def __init__(
        self,
        frame: pd.DataFrame,
        target: str,
        task: str,
        threshold: float,
        positive: Any,
        names: tuple[str, ...],
    ) -> None:
        self.frame, self.target_name, self.task, self.threshold = frame, target, task, threshold
        self.names = names
        if task == "classification":
            self.target = binary_target(frame[target], positive)
        else:
            self.target = frame[target].to_numpy(dtype=np.float64)
        self.subjects: dict[str, tuple[_Subject, np.ndarray | None]] = {}
        self.slices: list[tuple[str, SliceSpec, str, np.ndarray]] = []
        self.model_scores: np.ndarray | None = None

    def add(self, key: str, model: Any) -> None:
        what = "model" if key == "model" else f"baseline {key.split(':', 1)[1]!r}"
        score = scores(model, self.frame, self.task, [self.target_name], what)
        if self.task == "classification":
            check_scores(score, what)
        if key == "model":
            self.model_scores = score
        subject = _Subject(self.task, self.target, score, self.threshold, self.names)
        self.subjects[key] = (subject, None)

    def add_slice(self, spec: SliceSpec, value: str, rows: np.ndarray) -> None:
        key = f"slice:{spec.column}={value}"
        subject = _Subject(
            self.task, self.target[rows], self.model_scores[rows], self.threshold, self.names
        )
        self.subjects[key] = (subject, rows)
        self.slices.append((key, spec, value, rows))

    def run(self, resamples: int, seed: int, groups: list[GroupRates]) -> dict[str, Any]:
        n = len(self.frame)
        for group in groups:
            group.prepare(self.model_scores, self.threshold)
        point = self._measure(np.ones((1, n), dtype=np.uint8), groups)

        def resampled(start: int) -> dict[str, dict[str, np.ndarray]]:
            count = min(bootstrap.CHUNK, resamples - start)
            return self._measure(bootstrap.block(seed, n, start, count), groups)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            parts = list(pool.map(resampled, range(0, resamples, bootstrap.CHUNK)))
        return {"point": point, "boot": _stack(parts)}

    def _measure(
        self, weights: np.ndarray, groups: list[GroupRates]
    ) -> dict[str, dict[str, np.ndarray]]:
        found = {
            key: subject.values(weights if rows is None else weights[:, rows])
            for key, (subject, rows) in self.subjects.items()
        }
        for group in groups:
            found.update(group.values(weights))
        return found

    def report(
        self,
        found: dict[str, Any],
        level: float,
        resamples: int,
        seed: int,
        groups: list[GroupRates],
        min_slice_rows: int,
    ) -> Evaluation:
        point, boot = found["point"], found["boot"]
        names = self.names
        table = lambda key: _estimates(point[key], boot[key], names, level)  # noqa: E731
        evaluation = Evaluation(
            task=self.task,
            rows=len(self.frame),
            level=level,
            resamples=resamples,
            seed=seed,
            threshold=self.threshold,
            primary=PRIMARY[self.task] if PRIMARY[self.task] in names else names[0],
            target=self.target_name,
            metrics=table("model"),
        )
        for key in self.subjects:
            if key.startswith("baseline:"):
                name = key.split(":", 1)[1]
                evaluation.baselines[name] = table(key)
                evaluation.differences[name] = _differences(point, boot, key, names, level)
        evaluation.slices = self._slices(table, evaluation, min_slice_rows)
        evaluation.fairness = [group.report(point, boot, level) for group in groups]
        return evaluation

    def _slices(
        self, table: Callable[[str], dict[str, Estimate]], evaluation: Evaluation, min_rows: int
    ) -> list[Slice]:
        primary = evaluation.primary
        overall = evaluation.metrics[primary].value
        better_high = higher_is_better(primary)
        found = []
        for key, spec, value, rows in self.slices:
            metrics = table(key)
            estimate = metrics[primary]
            worse = estimate.high < overall if better_high else estimate.low > overall
            positives = int(self.target[rows].sum()) if self.task == "classification" else None
            small = len(rows) < min_rows or (
                positives is not None and min(positives, len(rows) - positives) < 5
            )
            found.append(
                Slice(spec.column, value, len(rows), positives, metrics, small, worse and not small)
            )
        return _rank_slices(found, primary, better_high)


def _stack(parts: Sequence[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    keys = parts[0].keys()
    return {
        key: {metric: np.concatenate([p[key][metric] for p in parts]) for metric in parts[0][key]}
        for key in keys
    }


def _estimates(
    point: dict[str, np.ndarray], boot: dict[str, np.ndarray], names: Sequence[str], level: float
) -> dict[str, Estimate]:
    return {
        name: Estimate(float(point[name][0]), *bootstrap.interval(boot[name], level))
        for name in names
    }


def _differences(
    point: dict[str, Any], boot: dict[str, Any], key: str, names: Sequence[str], level: float
) -> dict[str, Estimate]:
    """Model minus baseline, resample by resample (the paired bootstrap)."""
    found = {}
    for name in names:
        value = float(point["model"][name][0] - point[key][name][0])
        found[name] = Estimate(
            value, *bootstrap.interval(boot["model"][name] - boot[key][name], level)
        )
    return found


def _rank_slices(found: list[Slice], primary: str, better_high: bool) -> list[Slice]:
    """Worst first: by the primary metric's value, small slices last."""

    def badness(item: Slice) -> tuple[bool, float]:
        value = item.metrics[primary].value
        value = -np.inf if np.isnan(value) else value
        return (item.small, value if better_high else -value)

    return sorted(found, key=badness)


def score_estimate(
    rows: pd.DataFrame,
    metric: str,
    *,
    task: str = "classification",
    level: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
) -> Estimate | None:
    """One metric of logged predictions (a frame with ``score`` and ``label`` columns) with
    its bootstrap interval; None when a classification's labels hold one class only."""
    found = score_estimates(rows, [metric], task=task, level=level, resamples=resamples, seed=seed)
    return None if found is None else found[metric]


def score_estimates(
    rows: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    task: str = "classification",
    level: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
) -> dict[str, Estimate] | None:
    """Metrics of logged predictions (every metric of the task by default), on one
    bootstrap; None when there are no rows, or a classification's labels hold one class."""
    if rows.empty or (task == "classification" and rows["label"].nunique() < 2):
        return None
    found = evaluate(
        "score",
        rows[["score", "label"]],
        target="label",
        task=task,
        metrics=metrics,
        resamples=resamples,
        level=level,
        seed=seed,
    )
    return found.metrics
