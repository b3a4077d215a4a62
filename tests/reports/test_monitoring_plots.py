"""The versions timeline of the monitoring report: windows labelled with dates are drawn on
those dates, other labelled windows in their order, unlabelled ones on the clock; registry
events land among the windows they happened between. A replay computes months of windows
in seconds, so the clock alone would squeeze them together."""

from __future__ import annotations

from datetime import UTC, datetime

import plotly.graph_objects as go
import pytest

from loopml.reports.monitoring import _NO_POINTS, Facts, Points, as_of, window_dates
from loopml.reports.monitoring_plots import versions_timeline
from loopml.serving.deployments import Deployment
from loopml.store.monitoring import WindowRecord
from loopml.store.registry import RegistryEvent

NOW = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC: when the replay ran


def _windows(labels: list[str | None], versions: list[list[int]]) -> list[WindowRecord]:
    """Windows computed seconds apart, each over two seconds of traffic."""
    return [
        WindowRecord(
            f"w{i}", "churn", NOW + 3 * i, NOW + 3 * i + 2, NOW + 3 * i + 2.5, label, v, 50, "ok"
        )
        for i, (label, v) in enumerate(zip(labels, versions, strict=True))
    ]


def _event(at: float, to_version: int, alias: str | None = None) -> RegistryEvent:
    action = "set_alias" if alias else "register"
    return RegistryEvent("churn", 0, action, alias, None, to_version, "ada", None, at)


def _facts(windows: list[WindowRecord], events: list[RegistryEvent]) -> Facts:
    return Facts(
        name="churn",
        deployment=Deployment(),
        revision=1,
        served={},
        windows=windows,
        points=Points(_NO_POINTS, windows),
        latest={},
        alerts=[],
        events=events,
        decisions=[],
        since=None,
    )


def _traces(figure: go.Figure) -> dict[str, dict]:
    return {trace["name"]: trace for trace in figure.to_plotly_json()["data"]}


def _day(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d")


MONTHS = ["2013-03", "2013-06", "2013-09"]
SERVED = [[1], [1, 2], [2]]
EVENTS = [
    _event(NOW - 60, 1),  # registered before any traffic
    _event(NOW - 59, 1, "champion"),
    _event(NOW + 2.8, 2),  # between the first and the second window's traffic
    _event(NOW + 7, 2, "champion"),  # during the third window's traffic
]


def test_windows_labelled_with_dates_are_drawn_on_those_dates() -> None:
    figure = versions_timeline(go, _facts(_windows(MONTHS, SERVED), EVENTS))
    traces = _traces(figure)
    assert figure.layout.xaxis.type == "date"
    assert traces["v1 answered"]["x"] == [
        "2013-03-01T00:00:00+00:00",
        "2013-06-01T00:00:00+00:00",
        None,
    ]
    assert [_day(x) for x in traces["v2 answered"]["x"][:2]] == ["2013-06-01", "2013-09-01"]
    events = [_day(x) for x in traces["registry event"]["x"]]
    assert events[:2] == ["2013-03-01", "2013-03-01"]  # before the first window: on it
    assert "2013-03-01" < events[2] < "2013-06-01"
    assert events[3] == "2013-09-01"
    champion = [_day(x) for x in traces["@champion"]["x"] if x is not None]
    assert champion == ["2013-03-01", "2013-09-01", "2013-09-01", "2013-09-01"]


def test_other_labelled_windows_are_drawn_in_their_order() -> None:
    windows = _windows(["spring", "summer", None], SERVED)
    figure = versions_timeline(go, _facts(windows, EVENTS))
    traces = _traces(figure)
    axis = figure.layout.xaxis
    assert list(axis.ticktext) == ["spring", "summer", "2026-05-28 20:26"]
    assert list(axis.tickvals) == [0, 1, 2]
    assert traces["v1 answered"]["x"] == [0, 1, None]
    assert traces["v2 answered"]["x"] == [1, 2, None]
    assert traces["v2 answered"]["text"] == ["summer", "2026-05-28 20:26", None]
    events = traces["registry event"]["x"]
    assert events[0] == 0 and 0 < events[2] < 1 and events[3] == 2


def test_unlabelled_windows_are_drawn_on_the_clock() -> None:
    figure = versions_timeline(go, _facts(_windows([None, None, None], SERVED), EVENTS))
    traces = _traces(figure)
    assert figure.layout.xaxis.type == "date"
    start, end = (datetime.fromtimestamp(NOW + s, UTC).isoformat() for s in (0, 2))
    assert traces["v1 answered"]["x"][:2] == [start, end]
    assert traces["registry event"]["x"][0] == datetime.fromtimestamp(NOW - 60, UTC).isoformat()


@pytest.mark.parametrize(
    ("label", "moment"),
    [
        ("2013-03", "2013-03-01T00:00:00+00:00"),
        ("2013-03-15", "2013-03-15T00:00:00+00:00"),
        ("2013-03-15T06:30", "2013-03-15T06:30:00+00:00"),
        ("2013-03-15T06:30+02:00", "2013-03-15T04:30:00+00:00"),
    ],
)
def test_a_label_naming_a_date_is_read_as_one(label: str, moment: str) -> None:
    assert as_of(label) == datetime.fromisoformat(moment).timestamp()


@pytest.mark.parametrize("label", [None, "", "spring", "2013", "20130315", "2013-02-30", "2013-13"])
def test_other_labels_are_not_dates(label: str | None) -> None:
    assert as_of(label) is None


def test_windows_have_dates_only_when_every_label_is_one() -> None:
    assert window_dates(_windows(["2013-03", "2013-04"], [[1], [1]])) is not None
    assert window_dates(_windows(["2013-03", "spring"], [[1], [1]])) is None
    assert window_dates([]) is None
