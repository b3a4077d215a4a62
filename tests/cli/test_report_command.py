"""`loopml report`: the monitoring report written where asked (or in the workspace), its
path printed, Plotly's script shared beside it in one file or, with --self-contained, inside
it; one-line errors for an unknown endpoint or a time that is not one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from sklearn.linear_model import LogisticRegression

import loopml


@pytest.fixture
def churn(cli, sqlite_workspace) -> str:
    """churn@1, champion, with one monitored (empty) window."""
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    loopml.models.register("churn", model, card=False)
    loopml.models.set_alias("churn", "champion", 1)
    assert cli("monitor", "churn", "--window", "1h").code == 0
    return "churn"


def test_report_writes_the_page_in_the_workspace_and_prints_its_path(
    cli, churn, sqlite_workspace
) -> None:
    shown = cli("report", churn)
    assert shown.code == 0, shown.err
    path = sqlite_workspace.home / "reports" / "monitoring-churn.html"
    assert shown.out == f"{path}\n"
    assert "Monitoring: churn" in path.read_text(encoding="utf-8")


def test_report_writes_where_asked(cli, churn, tmp_path) -> None:
    target = tmp_path / "out" / "churn.html"
    shown = cli("report", churn, "-o", target, "--since", "2001-01-01T00:00")
    assert shown.code == 0, shown.err
    assert shown.out == f"{target}\n"
    assert "1 window from" in target.read_text(encoding="utf-8")


def test_the_page_uses_one_plotly_script_written_beside_it(cli, churn, sqlite_workspace) -> None:
    assert cli("report", churn).code == 0
    path = sqlite_workspace.home / "reports" / "monitoring-churn.html"
    assert path.stat().st_size < 500_000  # not the 4.6 MB of Plotly's script
    html = path.read_text(encoding="utf-8")
    assert '<script src="plotly.min.js" charset="utf-8"></script>' in html
    assert (path.parent / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()


def test_self_contained_puts_plotly_inside_the_page(cli, churn, tmp_path) -> None:
    target = tmp_path / "churn.html"
    assert cli("report", churn, "-o", target, "--self-contained").code == 0
    html = target.read_text(encoding="utf-8")
    assert get_plotlyjs() in html
    assert "<script src" not in html
    assert not (tmp_path / "plotly.min.js").exists()


def _state(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_shared_script_is_written_once_per_folder(cli, churn, tmp_path) -> None:
    assert cli("report", churn, "-o", tmp_path / "a.html").code == 0
    shared = tmp_path / "plotly.min.js"
    written = _state(shared)
    assert cli("report", churn, "-o", tmp_path / "b.html").code == 0
    assert _state(shared) == written
    assert '<script src="plotly.min.js"' in (tmp_path / "b.html").read_text(encoding="utf-8")


def test_a_changed_shared_script_is_written_again(cli, churn, tmp_path) -> None:
    shared = tmp_path / "plotly.min.js"
    shared.write_text("/* an older plotly */", encoding="utf-8")
    assert cli("report", churn, "-o", tmp_path / "a.html").code == 0
    assert shared.read_text(encoding="utf-8") == get_plotlyjs()


def test_report_errors_are_one_line(cli, one_line_error, churn) -> None:
    one_line_error(cli("report", "nothing"), 2, "No model is registered as 'nothing'")
    one_line_error(cli("report", churn, "--since", "last week"), 2, "--since is a time")
