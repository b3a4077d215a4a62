"""The data audit: the findings and verdict on a dataset with known flaws and on a clean one,
the split it makes, targets, contracts, errors, and the HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import loopml
from loopml.data.audit import AuditReport
from loopml.data.audit_html import write_audit_html
from loopml.errors import ColumnNotFoundError, UsageError
from loopml.workspace import Workspace

ROWS = 5000


def hours_of_2024(rng: np.random.Generator, rows: int = ROWS) -> pd.Series:
    hours = np.sort(rng.integers(0, 366 * 24, rows))
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")


def flawed_frame(seed: int = 7) -> pd.DataFrame:
    """Three classes (one rare), a leak, a customer id seen on both sides of a temporal
    split, a constant column and a column missing in 60% of rows."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=ROWS)
    label = (signal + rng.normal(size=ROWS) > 0).astype("int64")
    label[rng.choice(ROWS, 20, replace=False)] = 2
    customer = np.arange(ROWS) + 100_000
    customer[-400:] = customer[:400]  # the latest rows are early customers again
    sparse = rng.normal(size=ROWS)
    sparse[rng.permutation(ROWS) < 0.6 * ROWS] = np.nan
    return pd.DataFrame(
        {
            "when": hours_of_2024(rng),
            "signal": signal,
            "noise": rng.normal(size=ROWS),
            "leaky": label + rng.normal(scale=0.01, size=ROWS),
            "customer": customer,
            "constant": "same",
            "sparse": sparse,
            "label": label,
        }
    )


def clean_frame(seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=ROWS)
    segment = rng.choice(["north", "south", "east"], ROWS)
    label = (signal + (segment == "north") + rng.normal(size=ROWS) > 0.3).astype("int64")
    return pd.DataFrame(
        {
            "when": hours_of_2024(rng),
            "signal": signal,
            "noise": rng.normal(size=ROWS),
            "segment": segment,
            "distance": rng.uniform(0, 10, ROWS),
            "label": label,
        }
    )


def findings(report: AuditReport, check: str) -> dict[str | None, str]:
    """Severity per column of one check's findings."""
    return {f.column: f.severity for f in report.findings if f.check == check}


def test_a_flawed_dataset_is_not_ready(sqlite_workspace: Workspace) -> None:
    snapshot = loopml.data.add("flawed", flawed_frame(), time_column="when")
    report = loopml.data.audit(snapshot, target="label")

    assert report.verdict == "not ready"
    assert report.dataset == snapshot.ref
    assert report.task == "classification"
    assert report.rows == ROWS
    assert report.split["kind"] == "temporal"

    assert "leaky" in findings(report, "leakage")
    assert report.leakage[0]["column"] == "leaky" and report.leakage[0]["score"] > 0.95
    assert set(findings(report, "leakage")) == {"leaky"}
    assert findings(report, "constant") == {"constant": "warning"}
    assert "sparse" in findings(report, "missing")
    sparse = next(f for f in report.findings if f.check == "missing" and f.column == "sparse")
    assert sparse.value == pytest.approx(0.6)
    assert "60%" in sparse.message
    assert set(findings(report, "identifier_leak")) == {"customer"}
    overlap = next(f for f in report.findings if f.check == "identifier_leak")
    assert overlap.value > 0.3

    balance = [f for f in report.findings if f.check == "class_balance"]
    assert [(f.severity, f.column) for f in balance] == [("problem", "label")]
    assert "Class 2 has only 20 rows" in balance[0].message
    assert report.target_summary["classes"]["2"] == 20
    assert report.target_summary["minority"] == "2"
    problems = [f.message for f in report.findings if f.severity == "problem"]
    assert report.reasons[: len(problems)] == problems


def test_a_clean_dataset_is_ready(sqlite_workspace: Workspace) -> None:
    snapshot = loopml.data.add("clean", clean_frame(), time_column="when")
    report = loopml.data.audit(snapshot, target="label")
    assert report.verdict in ("ready", "ready with warnings")
    assert [f for f in report.findings if f.severity == "problem"] == []
    assert report.leakage and all(item["score"] < 0.95 for item in report.leakage)
    assert report.split["train_rows"] + report.split["test_rows"] == ROWS


def test_a_temporal_split_trains_on_the_past(sqlite_workspace: Workspace) -> None:
    frame = clean_frame()
    snapshot = loopml.data.add("clean", frame, time_column="when")
    report = loopml.data.audit(snapshot, target="label", split="temporal:2024-07-01")
    before = int((frame["when"] < pd.Timestamp("2024-07-01", tz="UTC")).sum())
    assert report.split["kind"] == "temporal"
    assert report.split["train_rows"] == before
    assert report.split["test_rows"] == ROWS - before
    assert report.split["cut"].startswith("2024-07-01T00:00:00")
    train_rate = frame.loc[frame["when"] < "2024-07-01", "label"].mean()
    assert report.split["target_rate"]["train"] == pytest.approx(train_rate)

    default = loopml.data.audit(snapshot, target="label")
    assert default.split["test_rows"] == pytest.approx(0.2 * ROWS, rel=0.05)


def test_a_random_split_takes_the_share_asked_for(sqlite_workspace: Workspace) -> None:
    frame = clean_frame().drop(columns="when")
    report = loopml.data.audit(frame, target="label", split="random:0.3")
    assert report.split["kind"] == "random"
    assert report.split["test_rows"] / ROWS == pytest.approx(0.3, abs=0.03)
    assert report.split["train_rows"] + report.split["test_rows"] == ROWS
    default = loopml.data.audit(frame, target="label")
    assert default.split["test_rows"] / ROWS == pytest.approx(0.2, abs=0.03)


def test_a_target_defined_by_a_comparison(sqlite_workspace: Workspace) -> None:
    frame = clean_frame().drop(columns="label")
    report = loopml.data.audit(frame, target="distance > 5", split="random:0.2")
    assert report.task == "classification"
    assert report.target == "distance > 5"
    above = int((frame["distance"] > 5).sum())
    assert report.target_summary["classes"] == {"true": above, "false": ROWS - above}
    # the column that defines the target is no leak of it
    assert "distance" not in {item["column"] for item in report.leakage}
    assert report.verdict != "not ready"


def test_a_regression_target(sqlite_workspace: Workspace) -> None:
    frame = clean_frame()
    frame["minutes"] = 30 * frame["signal"] + np.random.default_rng(3).normal(size=ROWS)
    report = loopml.data.audit(frame.drop(columns="label"), target="minutes", time_column="when")
    assert report.task == "regression"
    assert report.target_summary["mean"] == pytest.approx(frame["minutes"].mean())
    assert {item["metric"] for item in report.leakage} == {"R²"}
    assert report.leakage[0]["column"] == "signal"


def test_columns_known_after_prediction_are_reported(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    frame = clean_frame()
    frame["arrival_delay"] = np.random.default_rng(4).normal(size=ROWS)
    contract = tmp_path / "contract.yaml"
    contract.write_text(
        "columns:\n"
        "  when: {type: timestamp, role: time}\n"
        "  arrival_delay: {type: float, available_at: after_prediction}\n"
    )
    report = loopml.data.audit(frame, target="label", contract=contract)
    assert findings(report, "after_prediction") == {"arrival_delay": "warning"}
    assert report.split["kind"] == "temporal"  # the time column came from the contract


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"target": "delay"},
            ColumnNotFoundError,
            "target 'delay' is not a column.*signal, noise, segment",
        ),
        ({"target": "distance >> 5"}, ColumnNotFoundError, "target 'distance >> 5'"),
        (
            {"target": "label", "time_column": "hour"},
            ColumnNotFoundError,
            "time column 'hour' is not in the data",
        ),
        (
            {"target": "label", "split": "halves"},
            UsageError,
            "Unknown split 'halves'.*temporal:DATE or random:SHARE",
        ),
        ({"target": "label", "split": "random:1.5"}, UsageError, "between 0 and 1"),
        (
            {"target": "label", "split": "temporal:soon", "time_column": "when"},
            UsageError,
            "Cannot read 'soon'.*as a date",
        ),
    ],
)
def test_bad_arguments(
    sqlite_workspace: Workspace, arguments: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        loopml.data.audit(clean_frame(), **arguments)


def test_a_temporal_split_needs_a_time_column(sqlite_workspace: Workspace) -> None:
    snapshot = loopml.data.add("untimed", clean_frame().drop(columns="when"))
    with pytest.raises(UsageError, match="needs a time column.*--time-column"):
        loopml.data.audit(snapshot, target="label", split="temporal:2024-07-01")


def test_every_way_of_naming_a_snapshot_audits_it_the_same(sqlite_workspace: Workspace) -> None:
    snapshot = loopml.data.add("clean", clean_frame(), time_column="when")
    splits = [
        loopml.data.audit(ref, target="label").split for ref in (snapshot, "clean", snapshot.ref)
    ]
    assert [s["kind"] for s in splits] == ["temporal"] * 3
    assert splits[2] == splits[0]


def test_the_html_report_is_self_contained(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    from plotly.offline import get_plotlyjs

    snapshot = loopml.data.add("flawed", flawed_frame(), time_column="when")
    report = loopml.data.audit(snapshot, target="label")
    path = write_audit_html(report, tmp_path / "audit.html")
    assert path == tmp_path / "audit.html"
    html = path.read_text(encoding="utf-8")
    assert ">not ready<" in html
    assert snapshot.ref in html
    assert "Class 2 has only 20 rows" in html
    assert get_plotlyjs()[:2000] in html
    assert "<script src=" not in html.lower()
    assert 'id="figure-leakage"' in html and '"leaky"' in html


# --- targets, duplicates and missing values that once misled the audit ---------------------


def test_integer_classes_are_counted_exactly(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"f": rng.normal(size=2000), "status": rng.choice([200, 201, 404, 500], 2000)}
    )
    report = loopml.data.audit(frame, target="status", split="random:0.2")
    truth = {str(k): v for k, v in sorted(frame["status"].value_counts().items())}
    assert report.task == "classification"
    assert report.target_summary["classes"] == truth
    sides = report.class_counts
    assert set(sides["train"]) == set(sides["test"]) == set(truth)
    assert {k: sides["train"][k] + sides["test"][k] for k in truth} == truth
    html = write_audit_html(report, tmp_path / "audit.html").read_text(encoding="utf-8")
    assert '"x":["200","201","404","500"]' in html.replace(" ", "")


def test_an_integer_target_with_missing_values_stays_a_class_label(
    sqlite_workspace: Workspace,
) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    label = pa.array([*rng.integers(0, 2, n - 1).tolist(), None], pa.int64())
    hours = pa.array(pd.date_range("2024-01-01", periods=n, freq="h"))
    table = pa.table({"when": hours, "x": rng.normal(size=n), "label": label})
    default = loopml.data.audit(table, target="label", time_column="when")
    explicit = loopml.data.audit(
        table, target="label", time_column="when", split="temporal:2024-04-01"
    )
    assert default.task == explicit.task == "classification"
    assert "sides profiled on the sample" in default.split["plan"]
    assert sum(default.target_summary["classes"].values()) == n - 1


def test_duplicate_rows_count_missing_values_as_equal(sqlite_workspace: Workspace) -> None:
    base = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [np.nan, 1.0], "none": [None, None]})
    frame = pd.concat([base] * 100, ignore_index=True)
    frame["t"] = np.r_[np.zeros(100), np.ones(100)].astype(int)
    report = loopml.data.audit(frame, target="t", split="random:0.2")
    assert report.duplicates == int(frame.duplicated().sum()) == 196
    contract = {
        "columns": {"b": {"type": "string"}, "c": {"type": "float"}},
        "unique": [["b", "c"]],
        "extra_columns": "allow",
    }
    [found] = loopml.data.validate(frame, contract).report.violations  # unique skips nulls
    assert found.count == 99


# --- planted leaks ---------------------------------------------------------------------------


def demand_frame(seed: int = 11) -> pd.DataFrame:
    """Hourly demand explained in part by temperature and the hour, with noise: no leak."""
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, ROWS)
    temperature = rng.normal(15, 8, ROWS)
    demand = 200 + 4 * temperature + 30 * np.sin(hour / 24 * 2 * np.pi)
    return pd.DataFrame(
        {
            "hour": hour,
            "temperature": temperature,
            "noise": rng.normal(size=ROWS),
            "demand": demand + rng.normal(0, 30, ROWS),
        }
    )


def leak_findings(report: AuditReport) -> dict[str | None, str]:
    return findings(report, "leakage")


def test_clean_regression_data_has_no_leak(sqlite_workspace: Workspace) -> None:
    report = loopml.data.audit(demand_frame(), target="demand")
    assert report.task == "regression"
    assert leak_findings(report) == {}
    assert report.verdict == "ready"


def test_a_target_that_is_the_sum_of_two_columns_is_a_leak(sqlite_workspace: Workspace) -> None:
    frame = demand_frame()
    rng = np.random.default_rng(5)
    frame["casual"] = rng.uniform(0, 1, ROWS) * frame["demand"]
    frame["registered"] = frame["demand"] - frame["casual"]
    report = loopml.data.audit(frame, target="demand")
    single = {item["column"]: item["score"] for item in report.leakage}
    assert max(single["casual"], single["registered"]) < 0.95  # neither alone gives it away
    assert leak_findings(report) == {"casual + registered": "problem"}
    found = next(f for f in report.findings if f.column == "casual + registered")
    assert "the target is casual + registered on every row" in found.message
    assert report.verdict == "not ready"


def test_a_noisy_rescaled_combination_is_a_leak_without_an_identity(
    sqlite_workspace: Workspace,
) -> None:
    frame = demand_frame()
    rng = np.random.default_rng(6)
    share = rng.uniform(0.2, 0.8, ROWS)
    frame["before_noon"] = share * frame["demand"] / 60  # in other units
    frame["after_noon"] = (1 - share) * frame["demand"] + rng.normal(0, 0.5, ROWS)
    report = loopml.data.audit(frame, target="demand")
    found = next(f for f in report.findings if f.column == "before_noon + after_noon")
    assert found.severity == "problem" and found.value > 0.995
    assert "every row" not in found.message and "R²" in found.message


def test_a_copy_of_the_target_is_a_leak(sqlite_workspace: Workspace) -> None:
    frame = demand_frame()
    frame["demand_copy"] = frame["demand"].round(-1)
    report = loopml.data.audit(frame, target="demand")
    assert leak_findings(report) == {"demand_copy": "problem"}


def test_a_column_recorded_after_the_outcome_is_a_leak(sqlite_workspace: Workspace) -> None:
    frame = clean_frame()
    rng = np.random.default_rng(9)
    # a refund is only paid for flights that were late: known after the outcome
    frame["refund"] = frame["label"] * rng.uniform(5, 50, ROWS)
    report = loopml.data.audit(frame, target="label")
    assert leak_findings(report) == {"refund": "problem"}


def test_an_id_encoded_by_its_mean_target_is_a_leak(sqlite_workspace: Workspace) -> None:
    frame = demand_frame()
    customer = np.random.default_rng(10).integers(0, ROWS // 3, ROWS)
    frame["customer_mean_demand"] = frame.groupby(customer)["demand"].transform("mean")
    report = loopml.data.audit(frame, target="demand")
    assert "customer_mean_demand" in leak_findings(report)


def test_the_column_behind_a_comparison_target_is_no_split_shift(
    sqlite_workspace: Workspace,
) -> None:
    frame = demand_frame()
    frame["when"] = hours_of_2024(np.random.default_rng(2))
    frame["demand"] += np.linspace(0, 200, ROWS)  # demand grows over the year
    snapshot = loopml.data.add("demand", frame, time_column="when")
    report = loopml.data.audit(snapshot, target="demand > 300")
    assert "demand" not in {item["name"] for item in report.shift}
    assert "demand" not in findings(report, "split_shift")


def test_a_time_column_of_numbers_is_refused(sqlite_workspace: Workspace) -> None:
    frame = demand_frame()
    with pytest.raises(UsageError, match="'hour' holds int64, not timestamps or dates"):
        loopml.data.audit(frame, target="demand", time_column="hour")


def test_a_sum_is_found_when_one_of_its_terms_is_already_strong(
    sqlite_workspace: Workspace,
) -> None:
    frame = demand_frame()
    rng = np.random.default_rng(12)
    frame["casual"] = rng.uniform(0, 0.1, ROWS) * frame["demand"]
    frame["registered"] = frame["demand"] - frame["casual"]
    report = loopml.data.audit(frame, target="demand")
    single = {item["column"]: item["score"] for item in report.leakage}
    assert 0.9 <= single["registered"] < 0.99
    assert leak_findings(report) == {"registered": "warning", "casual + registered": "problem"}
