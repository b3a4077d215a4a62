"""`loopml report`: the monitoring report written where asked (or in the workspace), its
path printed; one-line errors for an unknown endpoint or a time that is not one."""

from __future__ import annotations

import pandas as pd
import pytest
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


def test_report_errors_are_one_line(cli, one_line_error, churn) -> None:
    one_line_error(cli("report", "nothing"), 2, "No model is registered as 'nothing'")
    one_line_error(cli("report", churn, "--since", "last week"), 2, "--since is a time")
