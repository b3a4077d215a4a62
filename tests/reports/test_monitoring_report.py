"""The monitoring report: one HTML page with every section, drawn from an
endpoint that was served, labelled, monitored over two labelled windows, promoted a new
version in between, fired an alert and has a loop decision; and a clear page for an endpoint
not monitored yet.

The endpoint is built once for the module (serving and monitoring take a few seconds), in a
workspace of its own.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from plotly.offline import get_plotlyjs
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import ModelNotFoundError
from loopml.loop.history import record
from loopml.monitoring.timeseries import windows
from loopml.monitoring.window import monitor
from loopml.reports.monitoring import monitoring_report, window_names
from loopml.serving import create_app, deploy
from loopml.settings import load_settings
from loopml.store.monitoring import WindowRecord
from loopml.workspace import Workspace, use_workspace

FEATURES = ["c", "b", "a"]  # the model leans on a, then b: importance reverses this order
SLOS = {"max_p99_latency_ms": 1000, "max_error_rate": 0.5}
RULES = "rules:\n  - name: drift\n    metric: psi\n    features: top 1\n    above: 0.1\n"
SECTIONS = ["summary", "drift", "predictions", "performance", "operations", "alerts"]
FIGURES = [
    "drift",
    "drifted-share",
    "rolling",
    "quantiles",
    "histogram-2",
    "performance",
    "coverage",
    "delay",
    "latency",
    "errors",
    "throughput",
    "cost",
    "versions",
]


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in FEATURES})
    frame["a"] += shift
    return frame


def _register(rng: np.random.Generator) -> int:
    x = _frame(rng, 800)
    y = 2 * x["a"] + 0.7 * x["b"] + rng.normal(scale=0.5, size=800) > 0
    model = LogisticRegression().fit(x, y)
    version = loopml.models.register(
        "churn", model, reference=x.assign(y=y), target="y", card=False
    )
    return version.version


def _window(client: TestClient, rng: np.random.Generator, shift: float, label: str) -> None:
    """Traffic, its labels, and one monitored window of it."""
    start = time.time()
    frame = _frame(rng, 300, shift)
    ids = []
    for first in range(0, 300, 50):
        records = frame.iloc[first : first + 50].to_dict("records")
        ids += [p["id"] for p in client.post("/predict", json=records).json()["predictions"]]
    labels = 2 * frame["a"] + 0.7 * frame["b"] + rng.normal(scale=1.0, size=300) > 0
    feedback = [{"id": i, "label": bool(y)} for i, y in zip(ids[:200], labels, strict=False)]
    assert client.post("/feedback", json=feedback).json()["accepted"] == 200
    monitor("churn", since=start, until=time.time(), label=label, rules=RULES)


@dataclass
class Endpoint:
    """The monitored endpoint, its workspace and its report."""

    workspace: Workspace
    html: str
    figures: dict


def figures_of(html: str) -> dict:
    """The Plotly figures the page draws, by name."""
    return json.loads(html.split("const figures = ", 1)[1].split(";\n", 1)[0])


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """churn@1 served for window 2013-01, then churn@2 promoted and served traffic whose a
    moved by one standard deviation for window 2013-02 (the drift rule fires)."""
    folder = tmp_path_factory.mktemp("endpoint")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("LOOPML_")]:
            patch.delenv(name)
        workspace = Workspace(load_settings(cwd=folder, home=str(folder / ".loopml"))).prepare()
    rng = np.random.default_rng(0)
    with use_workspace(workspace):
        loopml.models.set_alias("churn", "champion", _register(rng))
        deploy("churn", {"champion": "champion", "slos": SLOS})
        with TestClient(create_app("churn")) as client:
            _window(client, rng, 0.0, "2013-01")
            loopml.models.set_alias("churn", "champion", _register(rng), action="promote")
            time.sleep(2.5)  # the server follows the alias within reload_seconds
            _window(client, rng, 1.0, "2013-02")
        record(
            "churn",
            "retrain",
            "a drifted for a window",
            version=2,
            evidence={"psi": 0.4},
            workspace=workspace,
        )
        promoted = record(
            "churn",
            "promote",
            "version 2 is champion",
            version=2,
            evidence={"previous": 1},
            workspace=workspace,
        )
        record(
            "churn",
            "held",
            "version 2 served as well as version 1 would have",
            version=2,
            evidence={"promotion": promoted.id},
            workspace=workspace,
        )
        html = monitoring_report("churn", workspace=workspace)
    yield Endpoint(workspace, html, figures_of(html))
    workspace.close()


def test_the_page_is_self_contained(endpoint: Endpoint) -> None:
    plotly = get_plotlyjs()
    assert plotly in endpoint.html  # inlined, not fetched from a CDN
    page = endpoint.html.replace(plotly, "")  # the library's own strings are not links
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None
    assert "<script src" not in page


def test_every_section_and_plot_is_there(endpoint: Endpoint) -> None:
    for section in [*SECTIONS, "versions", "decisions"]:
        assert f'<h2 id="{section}">' in endpoint.html
    for name in FIGURES:
        assert name in endpoint.figures
        assert f'id="figure-{name}"' in endpoint.html


def test_drift_against_the_previous_window_is_drawn_beside_the_references(
    endpoint: Endpoint,
) -> None:
    lines = {t["name"]: t for t in endpoint.figures["rolling"]["data"]}
    assert list(lines) == ["against the training reference", "against the previous window"]
    assert lines["against the previous window"]["x"] == ["2013-01", "2013-02"]
    first, second = lines["against the previous window"]["y"]
    assert first is None and second > 0.1  # January has nothing before it; a moved in February


def test_windows_are_named_by_their_labels(endpoint: Endpoint) -> None:
    assert endpoint.figures["drift"]["data"][0]["x"] == ["2013-01", "2013-02"]
    assert endpoint.figures["latency"]["data"][0]["x"] == ["2013-01", "2013-02"]
    assert "2013-02" in endpoint.html.split("const figures", 1)[0]  # the tiles and tables


def test_the_versions_timeline_is_on_the_dates_the_labels_name(endpoint: Endpoint) -> None:
    timeline = {t["name"]: t for t in endpoint.figures["versions"]["data"]}
    assert timeline["v1 answered"]["x"] == ["2013-01-01T00:00:00+00:00", None]
    assert timeline["v2 answered"]["x"] == ["2013-02-01T00:00:00+00:00", None]
    events = timeline["registry event"]
    promoted = next(
        x for text, x in zip(events["text"], events["x"], strict=True) if "promote" in text
    )
    assert "2013-01-01" < promoted < "2013-02-01"  # between the windows' traffic


def test_the_heatmap_orders_features_by_importance_and_marks_drift(endpoint: Endpoint) -> None:
    heatmap = endpoint.figures["drift"]["data"][0]
    assert heatmap["y"] == ["a", "b", "c"]
    assert heatmap["text"][0] == ["", "●"]  # a drifted in 2013-02 only
    assert heatmap["z"][0][1] > 0.1
    assert "Benjamini-Hochberg" in endpoint.html


def test_versions_intervals_and_slos_are_drawn(endpoint: Endpoint) -> None:
    boxes = {t["name"]: t for t in endpoint.figures["quantiles"]["data"]}
    assert boxes["v1"]["x"] == ["2013-01"] and boxes["v2"]["x"] == ["2013-02"]
    v2 = [boxes["v2"][q][0] for q in ("lowerfence", "q1", "median", "q3", "upperfence")]
    assert v2 == sorted(v2) and v2[0] < v2[-1]
    estimate = endpoint.figures["performance"]["data"][0]
    assert all(v is not None and v > 0 for v in estimate["error_y"]["arrayminus"])
    slos = [shape["y0"] for shape in endpoint.figures["latency"]["layout"]["shapes"]]
    assert slos == [SLOS["max_p99_latency_ms"]]
    histogram = endpoint.figures["histogram-2"]["data"]
    assert [t["name"] for t in histogram] == ["window 2013-02", "reference"]


def test_alerts_history_and_decisions_are_listed(endpoint: Endpoint) -> None:
    html = endpoint.html
    assert "rule:drift" in html and ">open<" in html
    assert "champion: @champion → v2" in html
    assert "<td>promote</td>" in html and "v1 → v2" in html
    assert "a drifted for a window" in html
    assert "&#34;psi&#34;: 0.4" in html or '"psi": 0.4' in html  # evidence, escaped
    verdicts = html.split("Promotions and their verdicts")[1].split("</table>")[0]
    assert "<td>v2</td><td>v1</td><td><b" in verdicts and ">held</b>" in verdicts
    assert "version 2 served as well as version 1 would have" in verdicts


def test_since_leaves_out_earlier_windows(endpoint: Endpoint) -> None:
    first = windows("churn", workspace=endpoint.workspace)[0]
    html = monitoring_report("churn", since=first.end, workspace=endpoint.workspace)
    assert figures_of(html)["drift"]["data"][0]["x"] == ["2013-02"]


def test_the_report_is_written_to_a_path(endpoint: Endpoint, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "churn.html"
    html = monitoring_report("churn", path, workspace=endpoint.workspace)
    assert path.read_text(encoding="utf-8") == html
    assert len(html.encode()) < 500_000  # Plotly's script is in the shared file beside it
    assert '<script src="plotly.min.js"' in html
    assert (tmp_path / "deep" / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()


def test_a_written_report_can_be_self_contained(endpoint: Endpoint, tmp_path: Path) -> None:
    path = tmp_path / "churn.html"
    html = monitoring_report("churn", path, self_contained=True, workspace=endpoint.workspace)
    assert get_plotlyjs() in html and "<script src" not in html
    assert not (tmp_path / "plotly.min.js").exists()


def test_an_endpoint_without_windows_gets_a_clear_page(sqlite_workspace) -> None:
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    loopml.models.register("quiet", model, card=False)
    html = monitoring_report("quiet")
    assert "No window of quiet's traffic has been monitored" in html
    assert "loopml monitor quiet" in html
    assert list(figures_of(html)) == ["versions"]  # v1's registration, nothing over windows


def test_an_unknown_endpoint_is_refused(sqlite_workspace) -> None:
    with pytest.raises(ModelNotFoundError, match="No model is registered as 'nothing'"):
        monitoring_report("nothing")


def _window_at(end: float, label: str | None = None) -> WindowRecord:
    return WindowRecord("w", "churn", end - 60, end, end, label, [1], 10, "ok")


def test_unlabelled_windows_are_named_by_their_end() -> None:
    moment = 1_780_000_200.0  # 2026-05-28 20:30 UTC
    found = window_names([_window_at(moment), _window_at(moment + 900), _window_at(moment, "x")])
    assert found == ["2026-05-28 20:30", "2026-05-28 20:45", "x"]
    repeated = window_names([_window_at(moment), _window_at(moment + 5), _window_at(moment + 5)])
    assert repeated == ["2026-05-28 20:30:00", "2026-05-28 20:30:05", "2026-05-28 20:30:05 (2)"]


def test_a_failed_window_is_listed_with_its_reason(sqlite_workspace, monkeypatch) -> None:
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    loopml.models.register("broken", model, card=False)

    def unreadable(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr("loopml.monitoring.window.Traffic", unreadable)
    assert monitor("broken", window="1h").status == "failed"
    html = monitoring_report("broken")
    assert "1 failed" in html
    assert "the log could not be read: OSError: disk gone" in html


def _judged_window(workspace: Workspace, version: int, label: str, psi: float) -> None:
    """Store a window of churn served by version, with a's PSI, and judge a drift rule."""
    from loopml.ids import new_id
    from loopml.monitoring.rules import judge
    from loopml.store import monitoring as repo
    from loopml.store.monitoring import Point

    end = 1_800_000_000.0 + 3_600 * len(windows("churn", workspace=workspace))
    record = WindowRecord(new_id(), "churn", end - 3_600, end, end, label, [version], 500, "ok")
    record.points.append(Point("psi", "a", psi))
    with workspace.metadata.write() as connection:
        repo.add_window(connection, record)
    judge(
        "churn", "rules:\n  - {name: season, metric: psi, above: 0.25}\n", [], workspace=workspace
    )


def test_an_alert_that_never_resolves_is_marked_with_what_to_change(sqlite_workspace) -> None:
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    for _ in range(2):
        loopml.models.register("churn", model, card=False)
    _judged_window(sqlite_workspace, 1, "2013-03", 0.4)
    _judged_window(sqlite_workspace, 1, "2013-04", 0.5)
    assert "never resolves" not in monitoring_report("churn")
    _judged_window(sqlite_workspace, 2, "2013-05", 0.6)  # a new champion: still open
    html = monitoring_report("churn")
    row = html.split("rule:season", 1)[1].split("</tr>", 1)[0]
    assert "never resolves" in row and "open since 2013-03" in row
    assert "against: previous window" in row and "v1 → v2" in row
    assert "1 never resolves" in html
