"""The checks of one monitored window, each a function of the window that returns its points
(the time series values) and its details (what a report shows).

- ``data_drift``: every feature of the traffic against the reference profile (drift.py),
  and on samples when asked, exact two-sample tests;
- ``correlation``: pairs of numeric features whose correlation changed (Fisher's z on
  samples of both sides, Benjamini-Hochberg across pairs): drift no single feature shows;
- ``prediction_drift``: each version's scores against the scores it gave its reference;
- ``rolling_drift`` (rolling.py): data and prediction drift against earlier windows;
- ``quality``: rejected requests and the rules they broke, categories the reference never
  had, null rates that rose, features missing from the traffic;
- ``performance``: the metric on the feedback that arrived in the window, with an interval,
  label delay and coverage;
- ``operations``: latency percentiles, error rate, throughput and cost per 1,000 predictions,
  each against the deployment's SLOs.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from loopml.data.profile import CategoricalSummary, Profile
from loopml.events.traffic import Traffic
from loopml.monitoring.drift import DriftReport, FeatureDrift, drift
from loopml.registry.reference import Reference
from loopml.store.monitoring import Point

SCORE = "__score__"
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass
class Check:
    """What one check found in a window."""

    name: str
    status: str = "ok"  # ok | skipped | failed
    message: str = ""
    points: list[Point] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "details": self.details,
        }


@dataclass
class Seen:
    """What one pass over the window's answered rows gathered."""

    rows: int
    inputs: Profile
    scores: dict[int, Profile]
    sample: pd.DataFrame
    missing: list[str]


def _value(number: Any) -> float | None:
    if number is None:
        return None
    number = float(number)
    return number if math.isfinite(number) else None


def point(metric: str, value: Any, key: str = "", low: Any = None, high: Any = None) -> Point:
    return Point(metric, str(key), _value(value), _value(low), _value(high))


def data_drift(
    seen: Seen, reference: Reference | None, alpha: float, exact: bool, top: list[str]
) -> Check:
    check = Check("data_drift")
    if reference is None:
        return _skipped(check, "the version has no reference data")
    names = [n for n in reference.features if n in seen.inputs.columns_]
    if not seen.rows or not names:
        return _skipped(check, "no answered rows in the window")
    report = drift(reference.profile, seen.inputs, alpha=alpha, columns=names)
    check.points += drift_points(report)
    check.details = report.to_dict() | {"top_features": top}
    if exact:
        check.details["exact"] = _exact_tests(reference.sample, seen.sample, names, alpha)
        for name, found in check.details["exact"].items():
            check.points.append(point("exact_p", found["adjusted_p_value"], name))
    drifted = report.drifted
    check.message = (
        f"{len(drifted)} of {len(report.features)} features drifted"
        + (f": {', '.join(drifted[:5])}" if drifted else "")
        + f" (Benjamini-Hochberg at {alpha:g})"
    )
    return check


def drift_points(report: DriftReport, suffix: str = "") -> list[Point]:
    """A drift report's values: per feature, then over all features. suffix: what the drift
    was judged against, in the metric's name ('' for the training reference)."""
    found = []
    for feature in report.features:
        key = feature.name
        found += [
            point("psi" + suffix, feature.psi, key),
            point("js" + suffix, feature.js, key),
            point("drift_statistic" + suffix, feature.statistic, key),
            point("drift_p" + suffix, feature.adjusted_p_value, key),
            point("drifted" + suffix, float(feature.drifted), key),
        ]
        if feature.wasserstein is not None:
            found.append(point("wasserstein" + suffix, feature.wasserstein, key))
    return [
        *found,
        point("drifted_share" + suffix, report.drifted_share),
        point("drifted_features" + suffix, len(report.drifted)),
        point("max_psi" + suffix, max((f.psi for f in report.features), default=0.0)),
    ]


def prediction_points(feature: FeatureDrift, version: int, suffix: str = "") -> list[Point]:
    """The values of a version's score drift (suffix as in drift_points)."""
    return [
        point("prediction_psi" + suffix, feature.psi, version),
        point("prediction_ks" + suffix, feature.statistic, version),
        point("prediction_p" + suffix, feature.p_value, version),
    ]


def too_few(check: Check, seen: Seen, min_rows: int) -> Check | None:
    """The check skipped when the window answered fewer than min_rows rows (but some)."""
    if 0 < seen.rows < min_rows:
        return _skipped(
            check, f"only {seen.rows} answered rows; drift is judged on at least {min_rows}"
        )
    return None


def _skipped(check: Check, why: str) -> Check:
    check.status, check.message = "skipped", why
    return check


def _exact_tests(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str], alpha: float
) -> dict[str, dict[str, Any]]:
    """Two-sample tests on the raw samples: KS (exact for small samples) for numbers,
    chi-square for categories; adjusted together with Benjamini-Hochberg."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        a, b = reference[name].dropna(), current[name].dropna()
        if len(a) < 2 or len(b) < 2:
            continue
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            result = stats.ks_2samp(a.to_numpy(float), b.to_numpy(float))
            found[name] = {
                "test": "ks",
                "statistic": float(result.statistic),
                "p_value": float(result.pvalue),
            }
        else:
            table = pd.crosstab(
                np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a.astype(str), b.astype(str)]
            )
            if table.shape[1] < 2:
                continue
            statistic, p_value, _, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
            found[name] = {
                "test": "chi-square",
                "statistic": float(statistic),
                "p_value": float(p_value),
            }
    if found:
        adjusted = stats.false_discovery_control(
            [f["p_value"] for f in found.values()], method="bh"
        )
        for item, value in zip(found.values(), adjusted, strict=True):
            item["adjusted_p_value"] = float(value)
            item["drifted"] = bool(value < alpha)
    return found


def correlation(seen: Seen, reference: Reference | None, alpha: float) -> Check:
    check = Check("correlation")
    if reference is None or seen.sample.empty:
        return _skipped(check, "no reference data or no answered rows")
    names = [
        n
        for n in reference.features
        if n in seen.sample.columns
        and pd.api.types.is_numeric_dtype(reference.sample[n])
        and pd.api.types.is_numeric_dtype(seen.sample[n])
    ]
    pairs = correlation_changes(reference.sample[names], seen.sample[names], alpha)
    changed = [p for p in pairs if p["changed"]]
    check.points += [
        point("correlation_changed_pairs", len(changed)),
        point("max_correlation_change", max((abs(p["change"]) for p in pairs), default=0.0)),
    ]
    check.details = {"pairs": sorted(pairs, key=lambda p: p["p_value"])[:20], "tested": len(pairs)}
    check.message = f"{len(changed)} of {len(pairs)} feature pairs changed correlation"
    return check


def correlation_changes(
    reference: pd.DataFrame, current: pd.DataFrame, alpha: float
) -> list[dict[str, Any]]:
    """For every pair of columns, the change of Pearson's correlation from reference to
    current, tested with Fisher's z (pairwise complete rows), adjusted with BH."""
    found = []
    r_a, r_b = reference.corr(), current.corr()
    n_a, n_b = _pair_counts(reference), _pair_counts(current)
    names = list(reference.columns)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = r_a.loc[first, second], r_b.loc[first, second]
            size_a, size_b = n_a.loc[first, second], n_b.loc[first, second]
            if not (np.isfinite(a) and np.isfinite(b)) or min(size_a, size_b) < 10:
                continue
            spread = math.sqrt(1 / (size_a - 3) + 1 / (size_b - 3))
            z = (
                np.arctanh(np.clip(b, -0.9999, 0.9999)) - np.arctanh(np.clip(a, -0.9999, 0.9999))
            ) / spread
            found.append(
                {
                    "pair": [first, second],
                    "reference": float(a),
                    "current": float(b),
                    "change": float(b - a),
                    "p_value": float(2 * stats.norm.sf(abs(z))),
                }
            )
    if found:
        adjusted = stats.false_discovery_control([f["p_value"] for f in found], method="bh")
        for item, value in zip(found, adjusted, strict=True):
            item["adjusted_p_value"] = float(value)
            item["changed"] = bool(value < alpha)
    return found


def _pair_counts(frame: pd.DataFrame) -> pd.DataFrame:
    present = frame.notna().to_numpy(dtype=np.float64)
    return pd.DataFrame(present.T @ present, index=frame.columns, columns=frame.columns)


def prediction_drift(seen: Seen, references: dict[int, Reference | None], alpha: float) -> Check:
    check = Check("prediction_drift")
    found = {}
    for version, scores in sorted(seen.scores.items()):
        reference = references.get(version)
        summary = scores["score"]
        check.points += [point("score_mean", summary.mean, version)]
        quantiles = summary.quantiles(QUANTILES)
        check.points += [
            point("score_quantile", value, f"{version}:{q:g}") for q, value in quantiles.items()
        ]
        if reference is None or reference.scores is None:
            continue
        feature = drift(reference.scores, scores, alpha=alpha, columns=["score"]).features[0]
        check.points += prediction_points(feature, version)
        found[str(version)] = {
            "psi": feature.psi,
            "ks": feature.statistic,
            "p_value": feature.p_value,
            "drifted": feature.p_value < alpha,
            "histogram": dict(zip(("edges", "counts"), summary.bins(20), strict=True)),
            "reference_histogram": dict(
                zip(("edges", "counts"), reference.scores["score"].bins(20), strict=True)
            ),
        }
    if not seen.scores:
        return _skipped(check, "no answered rows in the window")
    check.details = {"versions": found}
    moved = [v for v, f in found.items() if f["drifted"]]
    check.message = (
        f"scores of version {', '.join(moved)} moved from their reference"
        if moved
        else "scores in line with the reference"
    )
    return check


def quality(traffic: Traffic, seen: Seen, reference: Reference | None, alpha: float) -> Check:
    check = Check("quality")
    requests = _requests_by_status(traffic)
    total = sum(requests.values())
    rejected = requests.get("rejected", 0)
    rate = rejected / total if total else 0.0
    rules = _broken_rules(traffic) if rejected else {}
    check.points += [
        point("violation_rate", rate),
        point("rejected_requests", rejected),
        *[point("violations", count, rule) for rule, count in rules.items()],
    ]
    details: dict[str, Any] = {
        "requests": requests,
        "rules": rules,
        "missing_features": seen.missing,
    }
    if reference is not None and seen.rows:
        details["new_categories"] = _new_categories(reference.profile, seen.inputs, check)
        details["null_spikes"] = _null_spikes(reference.profile, seen.inputs, alpha, check)
    check.points.append(point("missing_features", len(seen.missing)))
    check.details = details
    parts = [f"{rate:.1%} of {total} requests rejected"]
    if details.get("new_categories"):
        parts.append(f"new categories in {', '.join(details['new_categories'])}")
    if details.get("null_spikes"):
        parts.append(f"more nulls in {', '.join(details['null_spikes'])}")
    if seen.missing:
        parts.append(f"features missing from the traffic: {', '.join(seen.missing)}")
    check.message = "; ".join(parts)
    return check


def _requests_by_status(traffic: Traffic) -> dict[str, int]:
    if not traffic.has("predictions", "status"):
        return {}
    rows = traffic.rows(
        f"SELECT status, count(DISTINCT {traffic.request_key}) FROM predictions "
        f"WHERE {traffic.bounds()} AND coalesce(role, 'champion') <> 'shadow' GROUP BY status"
    )
    return {str(status): int(count) for status, count in rows}


def _broken_rules(traffic: Traffic, limit: int = 10_000) -> dict[str, int]:
    if not traffic.has("predictions", "problems"):
        return {}
    counts: Counter[str] = Counter()
    for (text,) in traffic.rows(
        f"SELECT problems FROM predictions WHERE {traffic.bounds()} AND status = 'rejected' "
        f"LIMIT {limit}"
    ):
        for problem in json.loads(text or "[]"):
            counts[str(problem.get("rule") or problem.get("location") or "unknown")] += 1
    return dict(counts.most_common(20))


def _new_categories(reference: Profile, current: Profile, check: Check) -> dict[str, Any]:
    found = {}
    for name, summary in current.columns_.items():
        known = reference.columns_.get(name)
        if not isinstance(summary, CategoricalSummary) or not isinstance(known, CategoricalSummary):
            continue
        counts = summary.categories.counts
        new = counts[~counts.index.isin(known.categories.counts.index)]
        share = float(new.sum() / counts.sum()) if counts.sum() else 0.0
        check.points.append(point("new_category_share", share, name))
        if len(new):
            found[name] = {"share": share, "values": [str(v) for v in new.index[:10]]}
    return found


def _null_spikes(reference: Profile, current: Profile, alpha: float, check: Check) -> list[str]:
    """Features whose null rate rose beyond chance: a one-sided binomial (normal
    approximation) test of the window's rate against the reference's, adjusted with BH."""
    tested, p_values = [], []
    for name, summary in current.columns_.items():
        known = reference.columns_.get(name)
        if known is None or not summary.rows:
            continue
        check.points.append(point("null_rate", summary.null_rate, name))
        base = min(max(known.null_rate, 0.5 / max(known.rows, 1)), 1 - 1e-9)
        z = (summary.null_rate - base) / math.sqrt(base * (1 - base) / summary.rows)
        tested.append(name)
        p_values.append(float(stats.norm.sf(z)))
    if not tested:
        return []
    adjusted = stats.false_discovery_control(p_values, method="bh")
    return [name for name, value in zip(tested, adjusted, strict=True) if value < alpha]


def performance(traffic: Traffic, task: str, level: float, seed: int) -> Check:
    check = Check("performance")
    if not traffic.has("feedback", "label"):
        return _skipped(check, "no feedback has arrived yet")
    labelled = _labelled(traffic)
    made, covered = _coverage(traffic)
    check.points += [
        point("labelled_rows", len(labelled)),
        point("label_coverage", covered / made if made else None),
    ]
    if labelled.empty:
        return _skipped(check, "no feedback arrived in the window")
    delays = (labelled["label_time"] - labelled["time"]).to_numpy()
    check.points += [
        point("label_delay_p50", np.percentile(delays, 50)),
        point("label_delay_p90", np.percentile(delays, 90)),
    ]
    details: dict[str, Any] = {
        "labelled": len(labelled),
        "coverage": covered / made if made else None,
    }
    metric, found = _metrics(labelled, task, level, seed)
    details |= {"metric": metric, "metrics": {}}
    for name, estimate in (found or {}).items():
        check.points.append(point(name, estimate.value, "", estimate.low, estimate.high))
        details["metrics"][name] = details[name] = estimate.to_dict()
    for version, rows in labelled.groupby("version") if found else ():
        _, own = _metrics(rows, task, level, seed)
        for name, estimate in (own or {}).items():
            check.points.append(
                point(name, estimate.value, f"v{version}", estimate.low, estimate.high)
            )
            details[f"{name}_v{version}"] = estimate.to_dict()
    check.details = details
    check.message = (
        f"{metric} {found[metric]} on {len(labelled)} labelled predictions"
        if found
        else f"{len(labelled)} labels, too few of each class for {metric}"
    )
    return check


def _labelled(traffic: Traffic) -> pd.DataFrame:
    """Predictions whose (latest) label arrived in the window, whenever they were made."""
    labels = (
        f"SELECT id, time AS label_time, label FROM feedback WHERE status = 'ok' AND "
        f"{traffic.bounds()} QUALIFY row_number() OVER (PARTITION BY id ORDER BY time DESC) = 1"
    )
    return traffic.connection.execute(
        f'SELECT p.version, p.time, l.label_time, p."output.score" AS score, l.label '
        f"FROM predictions p JOIN ({labels}) l USING (id) WHERE {traffic.answered('p')}"
    ).df()


def _coverage(traffic: Traffic) -> tuple[int, int]:
    """Answered predictions made in the window, and how many of them have a label by now."""
    made, covered = traffic.scalar(
        f"SELECT count(*), count(f.fid) FROM predictions p LEFT JOIN (SELECT DISTINCT id AS "
        f"fid FROM feedback WHERE status = 'ok') f ON p.id = f.fid WHERE "
        f"{traffic.answered('p')} AND {traffic.bounds('p')}"
    )
    return int(made), int(covered)


def _metrics(rows: pd.DataFrame, task: str, level: float, seed: int) -> tuple[str, Any]:
    """The task's primary metric, and every metric of the task (registered ones too) with
    its interval, or None when the rows cannot measure them."""
    from loopml.evaluation.evaluate import PRIMARY, score_estimates

    return PRIMARY[task], score_estimates(rows, task=task, level=level, seed=seed)


def operations(traffic: Traffic, slos: dict[str, float | None], price: float) -> Check:
    check = Check("operations")
    seconds = max(traffic.end - traffic.start, 1e-9)
    requests, errors, p50, p95, p99 = _latency(traffic)
    answered, cpu_ms = (
        traffic.scalar(
            f"SELECT count(*) FILTER (WHERE {traffic.answered()}), coalesce(sum(cpu_ms), 0) "
            f"FROM predictions WHERE {traffic.bounds()}"
        )
        if traffic.has("predictions", "cpu_ms")
        else (0, 0.0)
    )
    cost = (cpu_ms / 3.6e6) * price / answered * 1000 if answered else None
    values = {
        "requests": requests,
        "predictions": answered,
        "error_rate": errors / requests if requests else None,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "latency_p99_ms": p99,
        "throughput_rps": requests / seconds,
        "predictions_per_second": answered / seconds,
        "cpu_seconds": cpu_ms / 1000,
        "cost_per_1k": cost,
    }
    check.points += [point(name, value) for name, value in values.items()]
    verdicts = slo_verdicts(values, slos)
    check.points += [point("slo_met", float(ok), name) for name, ok in verdicts.items()]
    check.details = values | {
        "slos": {k: v for k, v in slos.items() if v is not None},
        "slo_met": verdicts,
    }
    broken = [name for name, ok in verdicts.items() if not ok]
    check.message = (
        f"{requests} requests, p99 {_ms(p99)}, errors {_percent(values['error_rate'])}, "
        f"cost per 1k {_money(cost)}" + (f"; SLOs broken: {', '.join(broken)}" if broken else "")
    )
    return check


def _latency(traffic: Traffic) -> tuple[int, int, float | None, float | None, float | None]:
    requests, errors, quantiles = traffic.requests(
        "coalesce(role, 'champion') IN ('champion', 'canary')"
    )
    p50, p95, p99 = quantiles if quantiles else (None, None, None)
    return requests, errors, p50, p95, p99


SLO_LIMITS = {
    "max_p99_latency_ms": ("latency_p99_ms", "max"),
    "max_p95_latency_ms": ("latency_p95_ms", "max"),
    "max_error_rate": ("error_rate", "max"),
    "max_cost_per_1k": ("cost_per_1k", "max"),
    "min_throughput_rps": ("throughput_rps", "min"),
}


def slo_verdicts(values: dict[str, Any], slos: dict[str, float | None]) -> dict[str, bool]:
    """Each SLO that is set and measurable: whether the window met it."""
    found = {}
    for name, limit in slos.items():
        measured, side = SLO_LIMITS[name]
        value = values.get(measured)
        if limit is None or value is None:
            continue
        found[name] = value <= limit if side == "max" else value >= limit
    return found


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


# Every metric a window can hold, and what its key is ("" when it has one value).
METRICS: dict[str, str] = {
    **dict.fromkeys(
        ["psi", "js", "drift_statistic", "drift_p", "drifted", "wasserstein", "exact_p"], "feature"
    ),
    **dict.fromkeys(["drifted_share", "drifted_features", "max_psi"], ""),
    **dict.fromkeys(["correlation_changed_pairs", "max_correlation_change"], ""),
    **dict.fromkeys(["score_mean", "prediction_psi", "prediction_ks", "prediction_p"], "version"),
    "score_quantile": "version:quantile",
    **dict.fromkeys(["violation_rate", "rejected_requests", "missing_features"], ""),
    "violations": "rule",
    **dict.fromkeys(["new_category_share", "null_rate"], "feature"),
    **dict.fromkeys(["labelled_rows", "label_coverage", "label_delay_p50", "label_delay_p90"], ""),
    **dict.fromkeys(["estimated_roc_auc", "estimated_accuracy"], ""),
    **dict.fromkeys(
        [
            "requests",
            "predictions",
            "error_rate",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "throughput_rps",
            "predictions_per_second",
            "cpu_seconds",
            "cost_per_1k",
        ],
        "",
    ),
    "slo_met": "slo",
}
FEEDBACK_KEY = "version (v<N>), or none for all"


def metric_key(metric: str) -> str | None:
    """What a window's metric is keyed by ("" for one value per window), or None for a name
    no check measures. Every evaluation metric, registered ones included, is measured on the
    feedback of each window."""
    from loopml.evaluation.catalog import find_metric

    if metric in METRICS:
        return METRICS[metric]
    return FEEDBACK_KEY if find_metric(metric) is not None else None


def monitored_metrics() -> list[str]:
    """Every metric a window can hold."""
    from loopml.evaluation.catalog import metric_names

    return [*METRICS, *metric_names()]
