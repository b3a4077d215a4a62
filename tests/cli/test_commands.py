"""The loopml command as a user types it: output, --json, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import loopml
from loopml import settings
from loopml.cli import workspace as workspace_commands
from loopml.cli.main import COMMANDS, load_command
from loopml.workspace import close_opened_workspaces


@pytest.fixture
def three_runs(tmp_path: Path) -> list[str]:
    ids = []
    for lr, auc in ((0.1, 0.71), (0.1, 0.69), (0.01, 0.80)):
        with loopml.start_run(experiment="flights", params={"lr": lr, "model": "gbm"}) as run:
            run.log_metrics({"auc": auc, "loss": 1 - auc})
        ids.append(run.id)
    return ids


def test_help_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopml.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    section = done.stdout.split("Commands:\n")[1].splitlines()
    listed = [line.split(maxsplit=1) for line in section if line.strip()]
    assert listed == [[name, summary] for name, (_, summary) in COMMANDS.items()]


def test_every_command_loads_with_its_own_name_and_summary() -> None:
    for name, (_, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name and command.help, name
        assert command.get_short_help_str(limit=80) == summary


def test_init_names_the_file_the_settings_read() -> None:
    assert workspace_commands.CONFIG_FILENAME == settings.CONFIG_FILENAME


HEAVY = (
    "alembic",
    "duckdb",
    "fastapi",
    "jinja2",
    "numpy",
    "optuna",
    "pandas",
    "plotly",
    "pyarrow",
    "pydantic",
    "scipy",
    "sklearn",
    "sqlalchemy",
    "uvicorn",
)

IMPORTS_PROBE = """
import json, sys
from loopml.cli.main import main
sys.argv = ["loopml", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name.split(".")[0] for name in sys.modules)))
"""


def heavy_imports(*args: str) -> set[str]:
    """The HEAVY modules a fresh process has imported after running `loopml ARGS...`."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_PROBE, *args], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1])) & set(HEAVY)


def test_help_imports_none_of_the_heavy_libraries() -> None:
    assert heavy_imports("--help") == set()
    assert heavy_imports("runs", "--help") <= {"pydantic"}  # Typer >= 0.22 parses with it


def test_runs_list_imports_only_the_metadata_store(cli) -> None:
    assert cli("init").code == 0
    assert heavy_imports("runs", "list") == {"pydantic", "sqlalchemy"}


def test_data_show_imports_no_models_servers_or_reports(cli, tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, 2.0], "kind": ["a", "b"]}), tmp_path / "t.parquet")
    assert cli("data", "add", "tiny", tmp_path / "t.parquet").code == 0
    loaded = heavy_imports("data", "show", "tiny")
    assert loaded & {"pandas", "pyarrow", "sqlalchemy"} == {"pandas", "pyarrow", "sqlalchemy"}
    assert not loaded & {"alembic", "duckdb", "fastapi", "jinja2", "optuna", "plotly", "scipy"}
    assert not loaded & {"sklearn", "uvicorn"}


def test_init_writes_the_config_and_creates_the_workspace(cli, tmp_path: Path) -> None:
    result = cli("init")
    assert result.code == 0, result.err
    assert (tmp_path / "loopml.toml").is_file()
    assert (tmp_path / ".loopml" / "metadata.db").is_file()
    assert (tmp_path / ".loopml" / ".gitignore").read_text().strip().endswith("*")
    (tmp_path / "loopml.toml").write_text('home = ".loopml"\nexperiment = "kept"\n')
    again = cli("init")
    assert "keeping it" in again.out
    assert "kept" in (tmp_path / "loopml.toml").read_text()


def test_init_can_point_at_other_stores(cli, tmp_path: Path) -> None:
    result = cli(
        "init",
        "project",
        "--metadata-url",
        f"sqlite:///{tmp_path}/elsewhere.db",
        "--artifacts-url",
        "memory://init-test",
    )
    assert result.code == 0, result.err
    assert (tmp_path / "elsewhere.db").is_file()
    written = (tmp_path / "project" / "loopml.toml").read_text()
    assert f'metadata_url = "sqlite:///{tmp_path}/elsewhere.db"' in written
    assert 'artifacts_url = "memory://init-test"' in written


def test_config_shows_values_and_their_sources(cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "loopml.toml").write_text('experiment = "demo"\n')
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "0.5")
    data = json.loads(cli("config", "--json").out)
    rows = {row["setting"]: row for row in data["settings"]}
    assert rows["experiment"]["value"] == "demo" and rows["experiment"]["source"] == "file"
    assert rows["metric_flush_interval"]["source"] == "env"
    assert rows["home"]["source"] == "default"
    assert data["config_file"] == str(tmp_path / "loopml.toml")


def test_runs_list_filters_and_sorts(cli, three_runs: list[str]) -> None:
    result = cli(
        "runs",
        "list",
        "--experiment",
        "flights",
        "--where",
        "metrics.auc > 0.7 and params.lr = 0.1",
        "--sort",
        "-metrics.auc",
        "--json",
    )
    assert result.code == 0, result.err
    assert [run["id"] for run in json.loads(result.out)] == [three_runs[0]]
    ordered = json.loads(cli("runs", "list", "--sort", "-metrics.auc", "--json").out)
    assert [run["id"] for run in ordered] == [three_runs[2], three_runs[0], three_runs[1]]
    assert ordered[0]["params"] == {"lr": 0.01, "model": "gbm"}


def test_runs_list_table_shows_the_fields_asked_about(cli, three_runs: list[str]) -> None:
    table = cli("runs", "list", "--where", "params.lr = 0.1", "--sort", "-metrics.auc").out
    header = table.splitlines()[0]
    assert header.index("metrics.auc") < header.index("params.lr")
    assert three_runs[0] in table and three_runs[1] in table and three_runs[2] not in table
    assert table.index(three_runs[0]) < table.index(three_runs[1])
    assert "No runs match." in cli("runs", "list", "--where", "metrics.auc > 2").out


def test_runs_show_by_prefix(cli, three_runs: list[str]) -> None:
    result = cli("runs", "show", three_runs[0][:8], "--json")
    data = json.loads(result.out)
    assert data["id"] == three_runs[0]
    assert data["metrics"]["auc"] == {"value": 0.71, "step": 0, "count": 1}
    assert data["status"] == "finished"
    assert data["environment"] is None
    text = cli("runs", "show", three_runs[0]).out
    assert "Params" in text and "Metrics" in text and "0.71" in text
    with_env = json.loads(cli("runs", "show", three_runs[0], "--environment", "--json").out)
    assert "sqlalchemy" in with_env["environment"]["packages"]
    assert "Packages" in cli("runs", "show", three_runs[0], "--environment").out


def test_runs_compare_highlights_differences(cli, three_runs: list[str]) -> None:
    data = json.loads(cli("runs", "compare", *three_runs[:2], "--json").out)
    rows = {row["field"]: row for row in data["rows"]}
    assert rows["params.lr"]["differs"] is False
    assert rows["metrics.auc"]["differs"] is True
    assert rows["metrics.auc"]["values"] == {three_runs[0]: 0.71, three_runs[1]: 0.69}
    only = json.loads(cli("runs", "compare", *three_runs, "--only-diff", "--json").out)
    assert {row["field"] for row in only["rows"]} == {"params.lr", "metrics.auc", "metrics.loss"}
    table = cli("runs", "compare", *three_runs).out
    assert "metrics.auc" in table and "0.69" in table


def test_runs_artifact_copies_a_file(cli, tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("hello")
    with loopml.start_run(experiment="a") as run:
        run.log_artifact("report.txt")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli("runs", "artifact", run.id, "report.txt", "--to", str(out_dir))
    assert result.code == 0, result.err
    assert (out_dir / "report.txt").read_text() == "hello"


def test_user_text_is_printed_as_is_never_as_markup(one_line_error, cli) -> None:
    with loopml.start_run(experiment="[bold]x[/]", name="[/red] oops", params={"p": "[/x]"}) as run:
        pass
    listing = cli("runs", "list")
    assert listing.code == 0, listing.err
    assert "[/red] oops" in listing.out and "[bold]x[/]" in listing.out
    shown = cli("runs", "show", run.id)
    assert shown.code == 0 and "[/x]" in shown.out
    one_line_error(cli("runs", "show", "[/x]"), 2, "'[/x]' is not a run id")


def test_json_output_survives_non_finite_params(cli) -> None:
    with loopml.start_run(experiment="e", params={"alpha": float("nan")}) as run:
        pass
    data = json.loads(cli("runs", "list", "--json").out)
    assert data[0]["params"] == {"alpha": "nan"}
    assert cli("runs", "compare", run.id, run.id, "--json").code == 0


def test_compare_sees_differences_smaller_than_the_display(cli) -> None:
    ids = []
    for lr in (0.1000001, 0.1000004):
        with loopml.start_run(experiment="e", params={"lr": lr, "same": 1}) as run:
            run.log_metric("auc", 0.85 + lr)
        ids.append(run.id)
    rows = {r["field"]: r for r in json.loads(cli("runs", "compare", *ids, "--json").out)["rows"]}
    assert rows["params.lr"]["differs"] and rows["metrics.auc"]["differs"]
    assert not rows["params.same"]["differs"]


def test_artifact_destinations(one_line_error, cli, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w")
    with loopml.start_run(experiment="a") as run:
        run.log_artifact(folder)
    (tmp_path / "afile").write_text("x")
    one_line_error(cli("runs", "artifact", run.id, "model", "--to", "afile"), 2, "a file is there")
    (tmp_path / "into").mkdir()
    assert cli("runs", "artifact", run.id, "model", "--to", "into").code == 0
    assert (tmp_path / "into" / "model" / "w.bin").read_bytes() == b"w"


def test_config_hides_passwords(cli, monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_METADATA_URL", "postgresql+psycopg://ml:s3cret@db.internal/x")
    for args in (("config",), ("config", "--json")):
        result = cli(*args)
        assert "s3cret" not in result.out and "ml:***@db.internal" in result.out


def test_experiments_list(cli, three_runs: list[str]) -> None:
    data = json.loads(cli("experiments", "list", "--json").out)
    assert [(e["name"], e["runs"]) for e in data] == [("flights", 3)]


# --- errors: one sentence, the next step, a non-zero exit code, no traceback ---------------


def test_unknown_run_id(one_line_error, cli, three_runs: list[str]) -> None:
    one_line_error(
        cli("runs", "show", "0123456789abcdef"),
        2,
        "No run has the id '0123456789abcdef'",
        "loopml runs list",
    )


def test_unknown_experiment(one_line_error, cli, three_runs: list[str]) -> None:
    one_line_error(
        cli("runs", "list", "-e", "flight"), 2, "No experiment is called 'flight'", "'flights'"
    )


def test_malformed_where(one_line_error, cli, three_runs: list[str]) -> None:
    one_line_error(
        cli("runs", "list", "--where", "metrics.auc > > 1"),
        2,
        "expected a value but found '>'",
        "position 15",
    )


def test_compare_needs_two_runs(one_line_error, cli, three_runs: list[str]) -> None:
    one_line_error(cli("runs", "compare", three_runs[0]), 2, "at least two run ids")


def test_unknown_metadata_scheme_lists_the_known_ones(one_line_error, cli, monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_METADATA_URL", "mysql://root@127.0.0.1/test")
    one_line_error(
        cli("runs", "list"), 2, "unknown URL scheme", "sqlite:///", "postgresql+psycopg://"
    )


def test_unknown_artifact_scheme_lists_the_known_ones(one_line_error, cli, monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_ARTIFACTS_URL", "ftp://host/path")
    one_line_error(cli("runs", "list"), 2, "unknown scheme 'ftp://'", "s3://")


def test_invalid_setting(one_line_error, cli, monkeypatch) -> None:
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "often")
    one_line_error(cli("runs", "list"), 2, "metric_flush_interval")


def test_a_workspace_from_a_newer_loopml(
    one_line_error, cli, tmp_path: Path, three_runs: list[str]
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/.loopml/metadata.db")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    close_opened_workspaces()  # a fresh process would not have it open
    one_line_error(cli("runs", "list"), 1, "schema revision 'ffff'", "pip install --upgrade")


def test_a_corrupted_artifact(one_line_error, cli, tmp_path: Path) -> None:
    with loopml.start_run(experiment="a") as run:
        record = run.log_artifact(b"precious", name="blob")
    workspace = loopml.current_workspace()
    Path(workspace.artifacts.path_of(record.digest)).write_bytes(b"changed!")
    one_line_error(
        cli("runs", "artifact", run.id, "blob", "--to", str(tmp_path / "x")), 1, "is corrupted"
    )
    assert not (tmp_path / "x").exists()


def test_an_unreachable_postgres_server(one_line_error, cli, monkeypatch) -> None:
    monkeypatch.setenv(
        "LOOPML_METADATA_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    one_line_error(cli("runs", "list"), 1, "metadata store", "failed")


def test_usage_errors_from_the_parser_exit_with_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopml.cli.main", "runs", "list", "--limit", "x"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
