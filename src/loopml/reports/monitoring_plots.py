"""The plots of the monitoring report (monitoring.py): Plotly figures made from what the
report read, one function per plot; a plot with nothing to show is left out.

Plots over time have one point per window, on a category axis in the windows' order; the
versions timeline puts the windows on their as-of dates, in their order, or on the clock
(Timeline).
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import groupby, pairwise
from typing import Any

import numpy as np

from loopml.monitoring.checks import QUANTILES
from loopml.reports.monitoring import (
    HEATMAP_FEATURES,
    Facts,
    Points,
    change,
    performance_metric,
    when,
)

PALETTE = ["#3b6fb6", "#d9822b", "#2f855a", "#8e44ad", "#c0352b", "#0f766e", "#667085"]
PSI_SCALE = [[0, "#f4f6f9"], [0.2, "#fbe3b5"], [0.5, "#eb9a3c"], [1, "#b42318"]]
SLO_LINES = {  # metric -> the SLOs drawn on its plot, and their names
    "latency": {"max_p95_latency_ms": "p95 SLO", "max_p99_latency_ms": "p99 SLO"},
    "errors": {"max_error_rate": "SLO"},
    "throughput": {"min_throughput_rps": "SLO"},
    "cost": {"max_cost_per_1k": "SLO"},
}
DELAY_UNITS = ((86_400, "days"), (3_600, "hours"), (60, "minutes"), (1, "seconds"))


def figures(facts: Facts) -> dict[str, Any]:
    """Every plot that has something to show, keyed by the name the template places it by."""
    import plotly.graph_objects as go  # imported on use: plotly is large

    makers = {
        "drift": drift_heatmap,
        "drifted-share": drifted_share,
        "rolling": rolling_psi,
        "quantiles": score_quantiles,
        "performance": performance,
        "coverage": label_coverage,
        "delay": label_delay,
        "latency": latency,
        "errors": error_rate,
        "throughput": throughput,
        "cost": cost,
        "versions": versions_timeline,
    }
    found = {name: make(go, facts) for name, make in makers.items()}
    found |= histograms(go, facts)
    return {name: figure for name, figure in found.items() if figure is not None}


def _layout(go: Any, title: str, facts: Facts | None = None, **extra: Any) -> Any:
    """The common look; with facts, an x axis of the windows in their order."""
    if facts is not None:
        extra["xaxis"] = {
            "type": "category",
            "categoryorder": "array",
            "categoryarray": facts.x,
            **extra.get("xaxis", {}),
        }
    look = {
        "title": {"text": title, "x": 0},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 64, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
        "hovermode": "x unified" if facts is not None else "closest",
    }
    return go.Layout(**(look | extra))


def _line(go: Any, facts: Facts, metric: str, name: str, color: str) -> Any:
    return go.Scatter(
        x=facts.x,
        y=facts.points.values(metric),
        name=name,
        mode="lines+markers",
        line={"color": color},
    )


def _slo_lines(figure: Any, facts: Facts, plot: str, scale: float = 1.0) -> None:
    """Dashed lines at the deployment's SLOs that belong on this plot."""
    slos = facts.deployment.slos.model_dump()
    for key, text in SLO_LINES[plot].items():
        if slos.get(key) is not None:
            figure.add_hline(
                y=slos[key] * scale,
                line_dash="dash",
                line_color="#c0352b",
                annotation_text=text,
                annotation_position="top left",
            )


def feature_order(facts: Facts) -> list[str]:
    """Features for the heatmap: the reference's most important first (top_features), then
    the others by their largest PSI; at most HEATMAP_FEATURES."""
    found = facts.latest.get("data_drift")
    top = found[1]["details"].get("top_features", []) if found else []
    features = facts.points.keys("psi")
    peak = {
        f: max((v for v in facts.points.values("psi", f) if v is not None), default=0.0)
        for f in features
    }
    ranked = [f for f in top if f in peak]
    ranked += sorted((f for f in features if f not in ranked), key=lambda f: -peak[f])
    return ranked[:HEATMAP_FEATURES]


def drift_heatmap(go: Any, facts: Facts) -> Any:
    features = feature_order(facts)
    if not features:
        return None
    psi = [facts.points.values("psi", f) for f in features]
    drifted = [facts.points.values("drifted", f) for f in features]
    adjusted = [facts.points.values("drift_p", f) for f in features]
    trace = go.Heatmap(
        x=facts.x,
        y=features,
        z=psi,
        customdata=adjusted,
        text=[["●" if d else "" for d in row] for row in drifted],
        texttemplate="%{text}",
        textfont={"color": "#1d2433"},
        colorscale=PSI_SCALE,
        zmin=0,
        zmax=0.5,
        xgap=1,
        ygap=1,
        colorbar={
            "title": {"text": "PSI"},
            "tickvals": [0, 0.1, 0.25, 0.5],
            "ticktext": ["0", "0.1", "0.25", "≥ 0.5"],
        },
        hovertemplate="%{y} in %{x}<br>PSI %{z:.3f}<br>adjusted p %{customdata:.2g}<extra></extra>",
    )
    layout = _layout(
        go,
        "PSI of each feature, per window (● drifted)",
        facts,
        height=max(320, 26 * len(features) + 140),
        hovermode="closest",
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return go.Figure([trace], layout)


def drifted_share(go: Any, facts: Facts) -> Any:
    if not facts.points.has("drifted_share"):
        return None
    share = go.Bar(
        x=facts.x,
        y=facts.points.values("drifted_share"),
        name="share of features drifted",
        marker_color=PALETTE[0],
        customdata=facts.points.values("drifted_features"),
        hovertemplate="%{y:.0%} (%{customdata} features)<extra></extra>",
    )
    layout = _layout(
        go,
        "Share of features drifted",
        facts,
        height=300,
        yaxis={"tickformat": ".0%", "range": [0, 1]},
    )
    return go.Figure([share], layout)


def rolling_psi(go: Any, facts: Facts) -> Any:
    """The largest feature PSI per window against the training reference and against each
    rolling reference measured: a season lifts the first, a sudden change every line."""
    from loopml.monitoring.rolling import split_metric

    split = [(metric, split_metric(metric)) for metric in facts.points.metrics()]
    rolling = sorted(
        (against.windows, metric, f"against {against.phrase()}")
        for metric, (base, against) in ((m, s) for m, s in split if s is not None)
        if base == "max_psi"
    )
    if not rolling:
        return None
    lines = [("max_psi", "against the training reference")]
    lines += [(metric, name) for _, metric, name in rolling]
    traces = [
        _line(go, facts, metric, name, PALETTE[index % len(PALETTE)])
        for index, (metric, name) in enumerate(lines)
    ]
    layout = _layout(
        go,
        "Largest feature PSI, against the reference and against earlier windows",
        facts,
        height=320,
        yaxis={"rangemode": "tozero"},
    )
    return go.Figure(traces, layout)


def _quantile_keys(points: Points) -> dict[str, dict[float, str]]:
    """version -> quantile -> the key of score_quantile that holds it."""
    found: dict[str, dict[float, str]] = {}
    for key in points.keys("score_quantile"):
        version, _, quantile = key.partition(":")
        found.setdefault(version, {})[float(quantile)] = key
    return found


def score_quantiles(go: Any, facts: Facts) -> Any:
    """Each version's scores per window as a box: median, 25–75% and whiskers at 10–90%."""
    keys = _quantile_keys(facts.points)
    if not keys:
        return None
    title = "Scores per window: median, 25–75% (box) and 10–90% (whiskers)"
    figure = go.Figure(layout=_layout(go, title, facts, boxmode="group", hovermode="closest"))
    for index, (version, quantiles) in enumerate(sorted(keys.items(), key=lambda i: int(i[0]))):
        if set(QUANTILES) <= set(quantiles):
            box = _quantile_box(go, facts, f"v{version}", quantiles)
            figure.add_trace(box.update(marker_color=PALETTE[index % len(PALETTE)]))
    return figure


def _quantile_box(go: Any, facts: Facts, version: str, keys: dict[float, str]) -> Any:
    """A box per window the version answered in, from its stored quantiles."""
    found = {q: facts.points.values("score_quantile", keys[q]) for q in QUANTILES}
    kept = [i for i, median in enumerate(found[0.5]) if median is not None]

    def at(q: float) -> list[float | None]:
        return [found[q][i] for i in kept]

    return go.Box(
        x=[facts.x[i] for i in kept],
        name=version,
        lowerfence=at(0.1),
        q1=at(0.25),
        median=at(0.5),
        q3=at(0.75),
        upperfence=at(0.9),
    )


def histograms(go: Any, facts: Facts) -> dict[str, Any]:
    """Per version of the newest window with prediction drift, its scores' histogram against
    the histogram of the scores it gave its reference."""
    found = facts.latest.get("prediction_drift")
    if found is None:
        return {}
    window, check = found
    name = facts.x[facts.windows.index(window)]
    versions = sorted(check["details"].get("versions", {}).items(), key=lambda i: int(i[0]))
    return {
        f"histogram-{version}": _histogram(go, name, version, item) for version, item in versions
    }


def _histogram(go: Any, window: str, version: str, item: dict[str, Any]) -> Any:
    edges, shares = _shares(item["histogram"])
    centers = [(a + b) / 2 for a, b in pairwise(edges)]
    widths = [b - a for a, b in pairwise(edges)]
    bars = go.Bar(
        x=centers,
        y=shares,
        width=widths,
        name=f"window {window}",
        marker_color=PALETTE[0],
        opacity=0.7,
        hovertemplate="%{x:.3g}: %{y:.1%}<extra></extra>",
    )
    edges, shares = _shares(item["reference_histogram"])
    steps = go.Scatter(
        x=edges,
        y=[*shares, shares[-1] if shares else 0],
        name="reference",
        mode="lines",
        line={"shape": "hv", "color": PALETTE[1], "width": 2.5},
        hovertemplate="from %{x:.3g}: %{y:.1%}<extra></extra>",
    )
    traces = [bars, steps]
    title = f"v{version} in {window} against its reference (PSI {item['psi']:.3f})"
    layout = _layout(
        go,
        title,
        barmode="overlay",
        height=320,
        xaxis={"title": {"text": "score"}},
        yaxis={"tickformat": ".0%", "title": {"text": "share of predictions"}},
    )
    return go.Figure(traces, layout)


def _shares(histogram: dict[str, list[float]]) -> tuple[list[float], list[float]]:
    total = max(sum(histogram["counts"]), 1)
    return histogram["edges"], [c / total for c in histogram["counts"]]


def performance(go: Any, facts: Facts) -> Any:
    """The metric with its interval per window; where several versions answered, each
    version's beside the overall one."""
    metric = performance_metric(facts.points)
    if metric is None:
        return None
    shared = [len(w.versions) > 1 for w in facts.windows]
    keys = [""] + [k for k in facts.points.keys(metric) if k and any(shared)]
    count = len(facts.x)
    axis = {
        "type": "linear",
        "tickvals": list(range(count)),
        "ticktext": facts.x,
        "range": [-0.5, count - 0.5],
    }
    title = f"{metric} on the labels that arrived, with bootstrap intervals"
    figure = go.Figure(
        layout=_layout(
            go,
            title,
            facts,
            height=380,
            hovermode="closest",
            xaxis=axis,
            yaxis={"range": _span(facts, metric, keys)},
        )
    )
    for index, key in enumerate(keys):
        step = (index - (len(keys) - 1) / 2) * 0.2
        x = [i + step if several else (i if not key else None) for i, several in enumerate(shared)]
        color = PALETTE[index % len(PALETTE)]
        figure.add_trace(_estimate_trace(go, facts, metric, key, x, color))
    return figure


def _span(facts: Facts, metric: str, keys: list[str]) -> list[float]:
    """The y range of the metric's intervals, with a margin."""
    found = [
        v
        for key in keys
        for column in ("value", "low", "high")
        for v in facts.points.values(metric, key, column)
        if v is not None
    ]
    low, high = min(found, default=0.0), max(found, default=1.0)
    margin = max(high - low, 0.02) * 0.15
    return [low - margin, high + margin]


def _estimate_trace(
    go: Any, facts: Facts, metric: str, key: str, x: list[float | None], color: str
) -> Any:
    def values(column: str) -> list[float | None]:
        found = facts.points.values(metric, key, column)
        return [v if at is not None else None for v, at in zip(found, x, strict=True)]

    values, lows, highs = values("value"), values("low"), values("high")
    above = [
        h - v if h is not None and v is not None else None
        for v, h in zip(values, highs, strict=True)
    ]
    below = [
        v - lo if lo is not None and v is not None else None
        for v, lo in zip(values, lows, strict=True)
    ]
    return go.Scatter(
        x=x,
        y=values,
        name=key or "all versions",
        mode="markers",
        customdata=list(zip(facts.x, lows, highs, strict=True)),
        hovertemplate="%{customdata[0]}: %{y:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}]",
        marker={"color": color, "size": 9},
        error_y={
            "type": "data",
            "array": above,
            "arrayminus": below,
            "color": color,
            "thickness": 1.5,
        },
    )


def label_coverage(go: Any, facts: Facts) -> Any:
    if not facts.points.has("label_coverage"):
        return None
    bar = go.Bar(
        x=facts.x,
        y=facts.points.values("label_coverage"),
        marker_color=PALETTE[2],
        name="labelled",
        customdata=facts.points.values("labelled_rows"),
        hovertemplate="%{y:.0%} labelled so far; %{customdata} labels arrived<extra></extra>",
    )
    layout = _layout(
        go, "Predictions labelled", facts, height=340, yaxis={"tickformat": ".0%", "range": [0, 1]}
    )
    return go.Figure([bar], layout)


def label_delay(go: Any, facts: Facts) -> Any:
    if not facts.points.has("label_delay_p50"):
        return None
    largest = max((v for v in facts.points.values("label_delay_p90") if v is not None), default=0.0)
    size, unit = next(((s, u) for s, u in DELAY_UNITS if largest >= 2 * s), DELAY_UNITS[-1])
    figure = go.Figure(
        layout=_layout(
            go, f"Label delay ({unit})", facts, height=340, yaxis={"rangemode": "tozero"}
        )
    )
    for index, key in enumerate(("label_delay_p50", "label_delay_p90")):
        delays = [v / size if v is not None else None for v in facts.points.values(key)]
        figure.add_trace(
            go.Scatter(
                x=facts.x,
                y=delays,
                name=key[-3:] + " delay",
                mode="lines+markers",
                line={"color": PALETTE[index]},
            )
        )
    return figure


def latency(go: Any, facts: Facts) -> Any:
    if not facts.points.has("latency_p99_ms"):
        return None
    figure = go.Figure(layout=_layout(go, "Latency per request (ms)", facts, height=340))
    for index, quantile in enumerate(("p50", "p95", "p99")):
        figure.add_trace(_line(go, facts, f"latency_{quantile}_ms", quantile, PALETTE[index]))
    _slo_lines(figure, facts, "latency")
    return figure


def error_rate(go: Any, facts: Facts) -> Any:
    if not facts.points.has("error_rate"):
        return None
    figure = go.Figure(
        [_line(go, facts, "error_rate", "error rate", PALETTE[4])],
        _layout(
            go, "Error rate", facts, height=340, yaxis={"tickformat": ".1%", "rangemode": "tozero"}
        ),
    )
    _slo_lines(figure, facts, "errors")
    return figure


def throughput(go: Any, facts: Facts) -> Any:
    if not facts.points.has("throughput_rps"):
        return None
    predictions = _line(go, facts, "predictions_per_second", "predictions/s", PALETTE[2])
    predictions.update(yaxis="y2", line_dash="dot")
    layout = _layout(
        go,
        "Throughput",
        facts,
        height=340,
        yaxis={"rangemode": "tozero", "title": {"text": "requests/s"}},
        yaxis2={
            "rangemode": "tozero",
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "title": {"text": "predictions/s"},
        },
    )
    figure = go.Figure(
        [_line(go, facts, "throughput_rps", "requests/s", PALETTE[0]), predictions], layout
    )
    _slo_lines(figure, facts, "throughput")
    return figure


def cost(go: Any, facts: Facts) -> Any:
    if not facts.points.has("cost_per_1k"):
        return None
    figure = go.Figure(
        [_line(go, facts, "cost_per_1k", "cost per 1,000", PALETTE[3])],
        _layout(
            go,
            "Cost per 1,000 predictions",
            facts,
            height=340,
            yaxis={"rangemode": "tozero", "exponentformat": "e"},
        ),
    )
    _slo_lines(figure, facts, "cost")
    return figure


def versions_timeline(go: Any, facts: Facts) -> Any:
    """Which versions answered in each window (thick), the champion alias over time (dotted),
    and the registry's events (diamonds), on the axis the Timeline chooses."""
    rows = sorted(
        {v for w in facts.windows for v in w.versions}
        | {e.to_version for e in facts.events if e.to_version is not None}
    )
    if not rows:
        return None
    timeline = Timeline(facts)
    deployments = ["deployment"] if any(e.to_version is None for e in facts.events) else []
    figure = go.Figure(
        layout=_layout(
            go,
            "Which version served when",
            height=200 + 40 * len(rows),
            xaxis=timeline.axis(),
            yaxis={
                "type": "category",
                "categoryorder": "array",
                "categoryarray": deployments + [f"v{v}" for v in rows],
            },
        )
    )
    traces = _champion_traces(go, facts, timeline) + _answered_traces(go, timeline, rows)
    for trace in traces:
        figure.add_trace(trace)
    figure.add_trace(_event_trace(go, facts, timeline))
    return figure


class Timeline:
    """The x axis of the versions timeline: the windows' as-of dates when every label is a
    date, else the windows in their order when any is labelled, else the clock (UTC).

    On the first two, a moment of the clock (a registry event) is placed by where it falls
    among the windows' traffic: inside a window, on it; between two, between them; before the
    first or after the last, on that one. A replay of months run in minutes so spreads over
    its months, not over the minutes it took.
    """

    def __init__(self, facts: Facts) -> None:
        self.windows, self.names, self.dates = facts.windows, facts.x, facts.dates
        labelled = any(w.label for w in self.windows)
        self.kind = "as_of" if self.dates else "label" if labelled else "clock"
        knots = sorted(
            (moment, float(self.dates[i] if self.dates else i))
            for i, window in enumerate(self.windows)
            for moment in (window.start, window.end)
        )
        self.clock = [moment for moment, _ in knots]
        self.positions = [position for _, position in knots]

    def at(self, moment: float) -> str | float:
        """The x of a moment of the clock."""
        if self.kind == "clock":
            return _moment(moment)
        position = float(np.interp(moment, self.clock, self.positions))
        return _moment(position) if self.kind == "as_of" else position

    def window(self, index: int) -> str | float:
        """The x of a window, on an axis other than the clock."""
        return _moment(self.dates[index]) if self.dates else index

    def answered(self, version: int) -> tuple[list[Any], list[str | None]]:
        """The x of the windows the version answered in, with their names, None between
        bars: on the clock a bar per window from its start to its end, otherwise a bar per
        run of consecutive windows through each of them."""
        x: list[Any] = []
        text: list[str | None] = []
        if self.kind == "clock":
            for name, window in zip(self.names, self.windows, strict=True):
                if version in window.versions:
                    x += [_moment(window.start), _moment(window.end), None]
                    text += [name, name, None]
            return x, text
        runs = groupby(enumerate(self.windows), key=lambda item: version in item[1].versions)
        for answered, run in runs:
            if answered:
                indexes = [index for index, _ in run]
                x += [self.window(i) for i in indexes] + [None]
                text += [self.names[i] for i in indexes] + [None]
        return x, text

    def axis(self) -> dict[str, Any]:
        """The layout of the x axis."""
        if self.kind == "clock":
            return {"type": "date", "title": {"text": "time (UTC)"}}
        if self.kind == "as_of":
            return {"type": "date", "title": {"text": "as of (the windows' labels)"}}
        count = len(self.names)
        return {
            "type": "linear",
            "tickvals": list(range(count)),
            "ticktext": self.names,
            "range": [-0.5, count - 0.5],
            "zeroline": False,
            "title": {"text": "window"},
        }


def _moment(timestamp: float) -> str:
    """A moment as ISO text in UTC, for a date axis."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _answered_traces(go: Any, timeline: Timeline, rows: list[int]) -> list[Any]:
    traces = []
    for index, version in enumerate(rows):
        x, text = timeline.answered(version)
        if x:
            traces.append(
                go.Scatter(
                    x=x,
                    y=[f"v{version}" if t else None for t in text],
                    text=text,
                    mode="lines+markers",
                    name=f"v{version} answered",
                    showlegend=False,
                    line={"width": 14, "color": PALETTE[index % len(PALETTE)]},
                    marker={"size": 14, "symbol": "square"},
                    hovertemplate=f"v{version} answered in %{{text}}<extra></extra>",
                )
            )
    return traces


def _champion_traces(go: Any, facts: Facts, timeline: Timeline) -> list[Any]:
    """The champion alias's versions over time, from the registry's history."""
    alias = facts.deployment.champion
    moves = [e for e in facts.events if e.alias == alias and e.to_version is not None]
    if not moves or alias.isdigit():
        return []
    last = max([moves[-1].at] + [w.end for w in facts.windows[-1:]])
    ends = [m.at for m in moves[1:]] + [last]
    x, y = [], []
    for move, end in zip(moves, ends, strict=True):
        x += [timeline.at(move.at), timeline.at(end), None]
        y += [f"v{move.to_version}"] * 2 + [None]
    return [
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name=f"@{alias}",
            line={"width": 3, "color": "#1d2433", "dash": "dot"},
            hovertemplate=f"@{alias} → %{{y}}<extra></extra>",
        )
    ]


def _event_trace(go: Any, facts: Facts, timeline: Timeline) -> Any:
    rows = [f"v{e.to_version}" if e.to_version is not None else "deployment" for e in facts.events]
    text = [
        f"{when(e.at, seconds=True)} UTC: {e.action} {e.alias or ''} {change(e)} {e.reason or ''}"
        for e in facts.events
    ]
    return go.Scatter(
        x=[timeline.at(e.at) for e in facts.events],
        y=rows,
        text=[t.strip() for t in text],
        mode="markers",
        name="registry event",
        marker={"symbol": "diamond", "size": 11, "color": "#1d2433"},
        hovertemplate="%{text}<extra></extra>",
    )
