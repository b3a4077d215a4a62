"""`loopml data ...`: add, from-log, list, show, diff, contracts, validation and the audit."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli import command_group, render
from loopml.errors import UsageError

data_app = command_group(help="Datasets: snapshots, profiles, contracts, validation, audits.")
contract_app = command_group(help="Infer and describe contracts.")
data_app.add_typer(contract_app, name="contract")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RefArgument = Annotated[str, typer.Argument(help="A dataset, or a snapshot: NAME@ID.")]


@data_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name (created on first use).")],
    source: Annotated[Path, typer.Argument(help="A Parquet or CSV file.")],
    time_column: Annotated[
        str | None, typer.Option("--time-column", help="The column that says when a row happened.")
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="The snapshot this data was derived from.")
    ] = None,
    contract: Annotated[
        Path | None, typer.Option("--contract", help="Validate against this contract too.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store a file as an immutable snapshot (identical content gives the same snapshot)."""
    import loopml

    with render.progress(f"Adding {source.name}") as done:
        snapshot = loopml.data.add(
            name, source, time_column=time_column, parent=parent, contract=contract
        )
        done()
    if as_json:
        render.print_json(
            {**snapshot.record.to_dict(), "validation": _report_json(snapshot.validation)}
        )
    else:
        out = render.console()
        out.print(
            f"Snapshot {snapshot.ref}: {snapshot.record.rows:,} rows, "
            f"{len(snapshot.record.schema)} columns, {render.size(snapshot.record.size)}"
        )
        if snapshot.validation is not None:
            out.print(Text(snapshot.validation.summary()))
    if snapshot.validation is not None and not snapshot.validation.passed:
        raise typer.Exit(1)


@data_app.command("from-log")
def from_log(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose log is read.")],
    name: Annotated[str, typer.Argument(help="Dataset name of the new snapshot.")],
    target: Annotated[str, typer.Option("--target", help="The column the labels go in.")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Predictions made from this time (ISO or seconds)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Predictions made before this time (now by default)."),
    ] = None,
    base: Annotated[
        str | None, typer.Option("--base", help="A snapshot the rows are appended to.")
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="A logged column that says when a row happened."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store the endpoint's labelled predictions (logged requests joined with their feedback)
    as a snapshot, optionally appended to a base snapshot."""
    import loopml
    from loopml.cli.monitoring import moment

    with render.progress(f"Reading the log of {endpoint}") as done:
        snapshot = loopml.data.from_log(
            endpoint,
            name,
            target=target,
            since=moment(since, "since"),
            until=moment(until, "until"),
            base=base,
            time_column=time_column,
        )
        done()
    if as_json:
        render.print_json(snapshot.record.to_dict())
        return
    render.console().print(
        f"Snapshot {snapshot.ref}: {snapshot.record.rows:,} rows, "
        f"{len(snapshot.record.schema)} columns, from the {snapshot.record.source}"
    )


def _report_json(report: Any) -> Any:
    return None if report is None else report.to_dict()


@data_app.command("list")
def list_datasets(as_json: JsonOption = False) -> None:
    """Datasets with their number of snapshots and newest snapshot."""
    import loopml

    records = loopml.data.list_datasets()
    if as_json:
        render.print_json(
            [
                {
                    **r.to_dict(),
                    "created_at": render.iso(r.created_at),
                    "latest_at": render.iso(r.latest_at),
                }
                for r in records
            ]
        )
        return
    out = render.console()
    if not records:
        out.print("No datasets yet. Add one with: loopml data add NAME FILE")
        return
    table = Table(box=None, header_style="bold")
    for header in ("name", "snapshots", "latest", "rows", "added"):
        table.add_column(header)
    for r in records:
        rows = "-" if r.latest_rows is None else f"{r.latest_rows:,}"
        table.add_row(
            r.name, str(r.snapshot_count), r.latest_snapshot or "-", rows, render.when(r.latest_at)
        )
    out.print(table)


@data_app.command("show")
def show(ref: RefArgument, as_json: JsonOption = False) -> None:
    """A snapshot (a dataset's newest by default): lineage and every column's profile."""
    import loopml

    snapshot = loopml.data.get(ref)
    profile = snapshot.profile().describe()
    others = loopml.data.snapshots(snapshot.record.dataset)
    if as_json:
        render.print_json(
            {
                **snapshot.record.to_dict(),
                "created_at": render.iso(snapshot.record.created_at),
                "profile": profile,
                "snapshots": [s.id for s in others],
            }
        )
        return
    out = render.console()
    out.print(_lineage_table(snapshot.record))
    out.print(_columns_table(profile))
    if len(others) > 1:
        listing = ", ".join(s.id for s in others[:10])
        out.print(
            Text(f"Snapshots of {snapshot.record.dataset} (newest first): {listing}", style="dim")
        )


def _lineage_table(record: Any) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("snapshot", record.ref),
        ("rows", f"{record.rows:,}"),
        ("size", render.size(record.size)),
        ("sha256", record.digest),
        ("source", record.source),
        ("parent", record.parent_id or "-"),
        ("time column", record.time_column or "-"),
        ("created", f"{render.when(record.created_at)} by {record.created_by}"),
        ("run", record.run_id or "-"),
    ]
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def _columns_table(profile: dict[str, Any]) -> Table:
    table = Table(
        box=None, header_style="bold", title="Columns", title_justify="left", title_style="bold"
    )
    for header in ("column", "type", "nulls", "distinct", "min / top", "median", "max"):
        table.add_column(header, overflow="fold")
    for column in profile["columns"]:
        table.add_row(*_column_cells(column))
    return table


def _column_cells(column: dict[str, Any]) -> list[str]:
    distinct = f"{column['distinct']:,}" + ("" if column["distinct_exact"] else " ~")
    cells = [column["name"], column["type"], f"{column['null_rate']:.1%}", distinct]
    if "top" in column:
        top = ", ".join(f"{t['value']} ({t['count']:,})" for t in column["top"][:3])
        return [*cells, top, "", ""]
    if "quantiles" in column:
        median = column["quantiles"].get("0.5")
        return [
            *cells,
            render.value(column["min"]),
            render.value(median),
            render.value(column["max"]),
        ]
    return [*cells, "", "", ""]


@data_app.command("diff")
def diff(a: RefArgument, b: RefArgument, as_json: JsonOption = False) -> None:
    """How snapshot B differs from A: schema, row counts and each column's shift."""
    import loopml

    found = loopml.data.diff(_source(a), _source(b))
    if as_json:
        render.print_json(found)
        return
    out = render.console()
    rows = found["rows"]
    out.print(
        f"{found['a']} -> {found['b']}: rows {rows['a']:,} -> {rows['b']:,} ({rows['change']:+,})"
    )
    schema = found["schema"]
    for label, names in (("added", schema["added"]), ("removed", schema["removed"])):
        if names:
            out.print(f"columns {label}: {', '.join(names)}")
    for item in schema["retyped"]:
        out.print(f"column {item['name']} retyped: {item['a']} -> {item['b']}")
    table = Table(
        box=None,
        header_style="bold",
        title="Shift per column (largest first)",
        title_justify="left",
        title_style="bold",
    )
    for header in ("column", "kind", "PSI", "JS", "KS", "nulls", "notes"):
        table.add_column(header)
    for column in found["columns"]:
        table.add_row(*_shift_cells(column))
    out.print(table)


def _shift_cells(column: dict[str, Any]) -> list[Any]:
    def number(key: str) -> str:
        return "-" if column.get(key) is None else f"{column[key]:.3f}"

    nulls = column["null_rate"]
    notes = []
    if column.get("new_categories"):
        notes.append("new: " + ", ".join(column["new_categories"][:3]))
    if column.get("missing_categories"):
        notes.append("gone: " + ", ".join(column["missing_categories"][:3]))
    psi = column.get("psi") or 0.0
    style = "bold red" if psi > 0.25 else "yellow" if psi > 0.1 else ""
    return [
        column["name"],
        column["kind"],
        Text(number("psi"), style=style),
        number("js"),
        number("ks"),
        f"{nulls[0]:.1%} -> {nulls[1]:.1%}",
        "; ".join(notes),
    ]


@contract_app.command("infer")
def contract_infer(
    ref: Annotated[str, typer.Argument(help="A snapshot (NAME or NAME@ID) or a data file.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    widen: Annotated[
        str,
        typer.Option(
            "--widen",
            help="Move numeric bounds out by this share of their range on each side (10% or 0.1).",
        ),
    ] = "0",
    quantiles: Annotated[
        str | None,
        typer.Option(
            "--quantiles",
            help="Put numeric bounds at these tail quantiles (0.001: the 0.1% and 99.9%).",
        ),
    ] = None,
) -> None:
    """Print a contract inferred from the data, as YAML, to edit by hand; its first line
    says how the bounds were made (by default the observed min and max)."""
    import loopml
    from loopml.data.contract import InferredBounds

    bounds = InferredBounds.of(widen, quantiles)
    contract = loopml.data.contract_for(_source(ref), widen=widen, quantiles=quantiles)
    text = contract.to_yaml(comment=bounds.describe())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        render.console().print(f"Wrote {output}. {bounds.describe()}")


@contract_app.command("schema")
def contract_schema() -> None:
    """Print the JSON Schema of the contract format."""
    import loopml

    render.print_json(loopml.data.json_schema())


@data_app.command("validate")
def validate(
    ref: Annotated[str, typer.Argument(help="A snapshot (NAME or NAME@ID) or a data file.")],
    contract: Annotated[Path, typer.Option("--contract", "-c", help="The contract (YAML).")],
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Split the rows instead of failing: keep the "
            "valid ones, set the others aside with their reasons.",
        ),
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="With --quarantine on a file: write the two Parquet files here "
            "(default: the current folder).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --quarantine on a file: overwrite earlier results."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check data against a contract; exit code 1 when any rule is broken."""
    import loopml

    source = _source(ref)
    saved: dict[str, str] = {}
    with render.progress("Validating") as done:
        if quarantine:
            report, saved = _quarantine(source, contract, output_dir or Path.cwd(), force)
        else:
            report = loopml.data.validate(source, contract).report
        done()
    if as_json:
        render.print_json({**report.to_dict(), "saved": saved})
    else:
        render.console().print(_report_table(report))
        for label, where in saved.items():
            render.console().print(f"{label}: {where}")
    if not report.passed and not quarantine:
        raise typer.Exit(1)


def _quarantine(
    source: Any, contract: Path, output_dir: Path, force: bool
) -> tuple[Any, dict[str, str]]:
    import loopml

    if isinstance(source, loopml.data.Snapshot):
        return _quarantine_snapshot(source, contract)
    return _quarantine_file(source, contract, output_dir, force)


def _quarantine_snapshot(source: Any, contract: Path) -> tuple[Any, dict[str, str]]:
    import loopml

    with tempfile.TemporaryDirectory(prefix="loopml-quarantine-") as scratch:
        valid, aside = Path(scratch) / "valid.parquet", Path(scratch) / "quarantined.parquet"
        report = loopml.data.api.quarantine_files(source, contract, valid, aside)
        name = source.record.dataset
        saved = {}
        if report.rows - report.quarantined:
            saved["valid rows"] = loopml.data.add(f"{name}.valid", valid, parent=source).ref
        if report.quarantined:
            saved["quarantined rows"] = loopml.data.add(
                f"{name}.quarantine", aside, parent=source
            ).ref
        return report, saved


def _quarantine_file(
    source: Path, contract: Path, output_dir: Path, force: bool
) -> tuple[Any, dict[str, str]]:
    import loopml

    kept, rejected = _quarantine_outputs(source, output_dir, force)
    with tempfile.TemporaryDirectory(prefix="loopml-quarantine-") as scratch:
        valid, aside = Path(scratch) / "valid.parquet", Path(scratch) / "quarantined.parquet"
        report = loopml.data.api.quarantine_files(source, contract, valid, aside)
        output_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(valid, kept)  # move, not rename: the folders may be on other disks
        shutil.move(aside, rejected)
    return report, {"valid rows": str(kept), "quarantined rows": str(rejected)}


def _quarantine_outputs(source: Path, output_dir: Path, force: bool) -> tuple[Path, Path]:
    """Where the valid and the quarantined rows of a file go; never over earlier results
    unless forced."""
    stem = _data_stem(source)
    outputs = (
        output_dir / f"{stem}.valid.parquet",
        output_dir / f"{stem}.quarantined.parquet",
    )
    existing = [path for path in outputs if path.exists()]
    if existing and not force:
        raise UsageError(
            f"{existing[0]} already exists and --quarantine would overwrite it. Move or delete "
            "it, write elsewhere with --output-dir DIR, or pass --force to overwrite."
        )
    return outputs


def _data_stem(path: Path) -> str:
    """A data file's name without its type suffixes: sales.2024-01.csv.gz gives
    sales.2024-01."""
    from loopml.data.io import COMPRESSED, CSV_SUFFIXES, PARQUET_SUFFIXES

    name = path.name
    for suffixes in (COMPRESSED, CSV_SUFFIXES.keys() | PARQUET_SUFFIXES):
        suffix = Path(name).suffix
        if suffix.lower() in suffixes:
            name = name.removesuffix(suffix)
    return name


def _report_table(report: Any) -> Any:
    if report.passed:
        return Text(f"All {report.rows:,} rows satisfy the contract.", style="green")
    table = Table(
        box=None,
        header_style="bold",
        title=f"{len(report.violations)} rule(s) broken in {report.rows:,} rows"
        + (f"; {report.quarantined:,} rows set aside" if report.quarantined else ""),
        title_justify="left",
        title_style="bold red",
    )
    for header in ("column", "rule", "count", "examples", "rows"):
        table.add_column(header, overflow="fold")
    for v in report.violations:
        table.add_row(
            v.column or "-",
            v.rule,
            f"{v.count:,}",
            ", ".join(map(str, v.examples)),
            ", ".join(map(str, v.rows)),
        )
    return table


def _source(ref: str) -> Any:
    """A data file path, or else a snapshot reference."""
    import loopml

    if Path(ref).exists():
        return Path(ref)
    return loopml.data.get(ref)


@data_app.command("audit")
def audit(
    ref: Annotated[str, typer.Argument(help="A snapshot (NAME or NAME@ID) or a data file.")],
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            help="The target column, or a comparison that defines one: 'arr_delay > 15'.",
        ),
    ],
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column",
            help="The column that says when a row happened (default: the snapshot's).",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="temporal:DATE or random:SHARE (default: "
            "temporal at 80% of time, else random:0.2).",
        ),
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            "--contract", help="A contract declaring roles and columns known only after prediction."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Where to write the HTML report (default: reports/ in the workspace)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Feasibility report before modelling: quality, balance, leakage, split differences,
    and a verdict. Exit code 1 when the verdict is 'not ready'."""
    import loopml
    from loopml.data.audit_html import write_audit_html

    source = _source(ref)
    with render.progress("Auditing") as done:
        found = loopml.data.audit(
            source, target=target, time_column=time_column, split=split, contract=contract
        )
        done()
    path = report or _default_report_path(found.dataset)
    write_audit_html(found, path)
    if as_json:
        render.print_json({**found.to_dict(), "html": str(path)})
    else:
        _print_audit(found, path)
    if found.verdict == "not ready":
        raise typer.Exit(1)


def _default_report_path(dataset: str) -> Path:
    from loopml.workspace import current_workspace

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in dataset.split("/")[-1])
    folder = current_workspace().home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"audit-{safe}.html"


VERDICT_STYLES = {
    "ready": "bold green",
    "ready with warnings": "bold yellow",
    "not ready": "bold red",
}


def _print_audit(found: Any, path: Path) -> None:
    out = render.console()
    split = found.split
    out.print(
        Text.assemble(
            ("Audit of ", ""),
            (found.dataset, "bold"),
            (" for target ", ""),
            (found.target, "bold"),
            (f" ({found.task})", ""),
        )
    )
    out.print(
        f"{found.rows:,} rows; split {split['plan']}: {split['train_rows']:,} training, "
        f"{split['test_rows']:,} test rows"
    )
    out.print(Text.assemble(("Verdict: ", "bold"), (found.verdict, VERDICT_STYLES[found.verdict])))
    table = Table(box=None, header_style="bold")
    for header in ("severity", "check", "column", "finding"):
        table.add_column(header, overflow="fold")
    styles = {"problem": "red", "warning": "yellow", "info": "blue"}
    for f in found.findings:
        table.add_row(
            Text(f.severity, style=styles[f.severity]), f.check, f.column or "", f.message
        )
    out.print(table)
    if found.leakage:
        top = ", ".join(f"{t['column']} {t['score']:.3f}" for t in found.leakage[:5])
        out.print(f"Strongest single features ({found.leakage[0]['metric']}): {top}")
    out.print(f"HTML report: {path}")
