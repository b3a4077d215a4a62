"""The audit as a self-contained HTML report with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loopml.data.audit import LEAK_LINES, AuditReport
from loopml.data.profile import CategoricalSummary, DatetimeSummary, NumericSummary, Profile
from loopml.reports.html import render

DISTRIBUTIONS = 8
COLORS = {"train": "#3b6fb6", "test": "#d9822b"}


def write_audit_html(report: AuditReport, path: str | Path) -> Path:
    """Write the report to path and return it."""
    import plotly.graph_objects as go  # imported on use: plotly is large

    figures: dict[str, Any] = {
        "target": _target_figure(go, report),
        "leakage": _leakage_figure(go, report),
        "missing": _missing_figure(go, report),
        "shift": _shift_figure(go, report),
    }
    names = [item["name"] for item in report.shift if item.get("psi") is not None]
    names = names[:DISTRIBUTIONS]
    for index, name in enumerate(names, start=1):
        figures[f"dist-{index}"] = _distribution_figure(go, report.profiles, name)
    render("audit.html.j2", path, report=report, figures=figures, distribution_names=names)
    return Path(path)


def _layout(go: Any, title: str, **extra: Any) -> Any:
    return go.Layout(
        title={"text": title, "x": 0},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        **extra,
    )


def _target_figure(go: Any, report: AuditReport) -> Any:
    if report.task == "classification":
        bars = []
        for side in ("train", "test"):
            counts = _shown_classes(report.class_counts.get(side, {}))
            total = max(sum(counts.values()), 1)
            bars.append(
                go.Bar(
                    name=side,
                    x=list(counts),
                    y=[v / total for v in counts.values()],
                    marker_color=COLORS[side],
                )
            )
        return go.Figure(
            bars,
            _layout(
                go, "Share of each class, per side", yaxis={"tickformat": ".0%"}, barmode="group"
            ),
        )
    return _distribution_figure(go, report.profiles, report.target)


def _shown_classes(counts: dict[str, int], most: int = 50) -> dict[str, int]:
    """The most frequent classes, in the order of the classes."""
    kept = set(sorted(counts, key=lambda value: -counts[value])[:most])
    return {value: count for value, count in counts.items() if value in kept}


def _leakage_figure(go: Any, report: AuditReport) -> Any:
    top = report.leakage[:25][::-1]
    problem, warning = LEAK_LINES[report.task]
    colors = [
        "#c0352b" if t["score"] >= problem else "#b7791f" if t["score"] >= warning else "#3b6fb6"
        for t in top
    ]
    figure = go.Figure(
        [
            go.Bar(
                x=[t["score"] for t in top],
                y=[t["column"] for t in top],
                orientation="h",
                marker_color=colors,
            )
        ],
        _layout(go, "Single-feature predictive power", height=max(320, 22 * len(top) + 100)),
    )
    for line in (warning, problem):
        figure.add_vline(x=line, line_dash="dash", line_color="#999")
    return figure


def _missing_figure(go: Any, report: AuditReport) -> Any:
    columns = sorted(report.columns, key=lambda c: -c["null_rate"])[:30][::-1]
    return go.Figure(
        [
            go.Bar(
                x=[c["null_rate"] for c in columns],
                y=[c["name"] for c in columns],
                orientation="h",
                marker_color="#667085",
            )
        ],
        _layout(
            go,
            "Share of missing values per column",
            xaxis={"tickformat": ".0%"},
            height=max(320, 22 * len(columns) + 100),
        ),
    )


def _shift_figure(go: Any, report: AuditReport) -> Any:
    items = [s for s in report.shift if s.get("psi") is not None][:25][::-1]
    figure = go.Figure(
        [
            go.Bar(
                x=[s["psi"] for s in items],
                y=[s["name"] for s in items],
                orientation="h",
                marker_color="#3b6fb6",
            )
        ],
        _layout(
            go, "Shift between training and test (PSI)", height=max(320, 22 * len(items) + 100)
        ),
    )
    for line in (0.1, 0.25):
        figure.add_vline(x=line, line_dash="dash", line_color="#999")
    return figure


def _distribution_figure(go: Any, profiles: dict[str, Profile], name: str) -> Any:
    traces = []
    for side in ("train", "test"):
        summary = profiles[side].columns_.get(name)
        if summary is None or not summary.count:
            continue
        x, y = _shares(summary, profiles)
        traces.append(go.Bar(name=side, x=x, y=y, marker_color=COLORS[side], opacity=0.75))
    return go.Figure(
        traces,
        _layout(go, f"{name}: distribution per side", barmode="group", yaxis={"tickformat": ".0%"}),
    )


def _shares(summary: Any, profiles: dict[str, Profile]) -> tuple[list[Any], list[float]]:
    if isinstance(summary, CategoricalSummary):
        whole = profiles["whole"][summary.name]
        labels = [str(v) for v, _ in whole.top(20)]  # type: ignore[attr-defined]
        counts = summary.categories.counts
        total = max(summary.count, 1)
        return labels, [float(counts.get(label, 0)) / total for label in labels]
    if isinstance(summary, NumericSummary | DatetimeSummary):
        whole = profiles["whole"][summary.name]
        low, high = whole.min, whole.max  # type: ignore[attr-defined]
        edges, counts = summary.histogram.histogram(30, low, high)
        centers = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
        if isinstance(summary, DatetimeSummary):
            labels = [np.datetime64(int(c), "s").astype(str) for c in centers]
        else:
            labels = [float(c) for c in centers]
        total = max(counts.sum(), 1)
        return labels, (counts / total).tolist()
    return [], []
