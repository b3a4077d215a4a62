"""`loopml runs ...` and `loopml experiments ...`: find, inspect and compare runs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

import loopml
from loopml.cli import command_group, render
from loopml.errors import UsageError

if TYPE_CHECKING:
    from loopml.store.query import Field
    from loopml.store.records import ArtifactRecord, MetricSummary, RunRecord

runs_app = command_group(help="Find, inspect and compare runs.")
experiments_app = command_group(help="List experiments.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
EXTRA_COLUMNS = 4


@runs_app.command("list")
def list_runs(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only runs of this experiment.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            "-w",
            help='Filter, e.g. "metrics.auc > 0.7 and params.lr = 0.1" (see docs/tracking.md).',
        ),
    ] = None,
    sort: Annotated[
        list[str] | None,
        typer.Option("--sort", "-s", help="Sort key, e.g. -metrics.auc (descending); repeatable."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Show at most N runs.")] = 50,
    columns: Annotated[
        str | None,
        typer.Option("--columns", "-c", help="Comma-separated fields to show as columns."),
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Only runs nested under this run.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first unless --sort says otherwise."""
    records = loopml.search_runs(experiment, where=where, sort=sort, limit=limit, parent=parent)
    if as_json:
        render.print_json([render.run_json(record) for record in records])
        return
    out = render.console()
    if not records:
        out.print("No runs match." if where or experiment or parent else "No runs yet.")
        return
    fields = _columns(records, where, sort, columns)
    out.print(_runs_table(records, fields))
    if len(records) == limit:
        out.print(Text(f"Showing the first {limit} runs; use --limit to see more.", style="dim"))


def _columns(
    records: list[RunRecord], where: str | None, sort: list[str] | None, requested: str | None
) -> list[Field]:
    from loopml.store.query import Field, fields_of, parse_field, parse_sort, parse_where

    if requested:
        return [parse_field(requested, name.strip(), 0) for name in requested.split(",") if name]
    chosen: list[Field] = [key.field for key in parse_sort(sort or [])]
    if where:
        chosen += fields_of(parse_where(where))
    chosen = [f for f in dict.fromkeys(chosen) if f.namespace != "attr" or f.name not in BASE]
    for namespace in ("metrics", "params"):
        counts = Counter(key for r in records for key in getattr(r, namespace))
        extra = [Field(namespace, key) for key, _ in counts.most_common(EXTRA_COLUMNS)]
        chosen += [f for f in extra if f not in chosen]
    return chosen


BASE = ("id", "experiment", "name", "status", "start_time", "duration")


def _runs_table(records: list[RunRecord], fields: list[Field]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("id", "experiment", "name", "status", "started", "duration"):
        table.add_column(header, no_wrap=True)
    for field in fields:
        table.add_column(str(field), justify="right" if field.namespace == "metrics" else "left")
    for record in records:
        name = record.name or "-"
        if record.parent_id:
            name = f"↳ {name}"
        cells = [
            record.id,
            record.experiment,
            name,
            render.status(record.status),
            render.when(record.start_time),
            render.duration(record.duration),
        ]
        cells += [_cell(record, field) for field in fields]
        table.add_row(*cells)
    return table


def _cell(record: RunRecord, field: Field) -> str:
    shown = field_value(record, field)
    return render.param(shown) if field.namespace == "params" else render.value(shown)


def field_value(record: RunRecord, field: Field) -> Any:
    """A run's value of a field (None when it has none)."""
    if field.namespace == "attr":
        if field.name == "parent":
            return record.parent_id
        return getattr(record, field.name, None)
    return getattr(record, field.namespace).get(field.name)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    environment: Annotated[
        bool, typer.Option("--environment", help="Also list the installed packages.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show one run: attributes, params, metrics, tags, artifacts and nested runs."""
    record = loopml.get_run(run_id)
    details = {
        "metrics": loopml.metric_summaries(record.id),
        "artifacts": loopml.list_artifacts(record.id),
        "children": loopml.child_runs(record.id),
        "environment": loopml.run_environment(record.id) if environment else None,
    }
    if as_json:
        render.print_json(_run_details_json(record, **details))
    else:
        _print_run(record, **details)


def _run_details_json(
    record: RunRecord,
    metrics: list[MetricSummary],
    artifacts: list[ArtifactRecord],
    children: list[RunRecord],
    environment: dict[str, Any] | None,
) -> dict[str, Any]:
    data = render.run_json(record)
    data["metrics"] = {m.key: {"value": m.value, "step": m.step, "count": m.count} for m in metrics}
    data["artifacts"] = [a.to_dict() for a in artifacts]
    data["children"] = [child.id for child in children]
    data["environment"] = environment
    return data


def _print_run(
    record: RunRecord,
    metrics: list[MetricSummary],
    artifacts: list[ArtifactRecord],
    children: list[RunRecord],
    environment: dict[str, Any] | None,
) -> None:
    out = render.console()
    out.print(_attributes_panel(record))
    params = [[k, render.param(v)] for k, v in sorted(record.params.items())]
    _print_section(out, "Params", ["key", "value"], params)
    values = [[m.key, render.value(m.value), str(m.step), str(m.count)] for m in metrics]
    _print_section(out, "Metrics", ["key", "latest", "step", "values"], values)
    _print_section(out, "Tags", ["key", "value"], sorted(record.tags.items()))
    files = [
        [a.direction, a.name, a.kind, render.size(a.size), a.digest[:12], a.source or ""]
        for a in artifacts
    ]
    _print_section(out, "Artifacts", ["", "name", "kind", "size", "sha256", "source"], files)
    nested = [
        [c.id, c.name or "-", render.status(c.status), render.duration(c.duration)]
        for c in children
    ]
    _print_section(out, "Nested runs", ["id", "name", "status", "duration"], nested)
    if environment:
        packages = sorted(environment.get("packages", {}).items())
        _print_section(out, "Packages", ["name", "version"], packages)
    if record.error:
        out.print(Panel(Text(record.error), title="Error", border_style="red", expand=False))


def _attributes_panel(record: RunRecord) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[record.git_dirty]
    rows = [
        ("experiment", record.experiment),
        ("name", record.name or "-"),
        ("status", render.status(record.status)),
        ("parent", record.parent_id or "-"),
        ("started", render.when(record.start_time)),
        ("ended", render.when(record.end_time)),
        ("duration", render.duration(record.duration)),
        ("seed", "-" if record.seed is None else str(record.seed)),
        ("git commit", (record.git_commit or "-") + dirty),
        ("host", f"{record.host} (pid {record.pid}, user {record.user})"),
        ("python", record.python_version),
        ("command", record.command),
    ]
    for key, text in rows:
        grid.add_row(key, text)
    return Panel(grid, title=f"Run {record.id}", title_align="left", expand=False)


def _print_section(out: Any, title: str, headers: list[str], rows: list[Any]) -> None:
    if not rows:
        return
    table = Table(title=title, title_justify="left", title_style="bold", box=None)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[cell if isinstance(cell, Text) else str(cell) for cell in row])
    out.print(table)


@runs_app.command("compare")
def compare_runs(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    only_diff: Annotated[
        bool, typer.Option("--only-diff", help="Show only the rows whose values differ.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params and metrics, with differences highlighted."""
    if len(run_ids) < 2:
        raise UsageError(
            "Give at least two run ids to compare, e.g. loopml runs compare ab12 cd34."
        )
    records = [loopml.get_run(run_id) for run_id in run_ids]
    rows = comparison_rows(records)
    if only_diff:
        rows = [row for row in rows if row["differs"]]
    if as_json:
        render.print_json({"runs": [r.id for r in records], "rows": rows})
        return
    render.console().print(_comparison_table(records, rows))


COMPARED_ATTRIBUTES = ("experiment", "name", "status", "duration", "seed", "git_commit")


def comparison_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per attribute, param and metric: each run's value and whether they differ."""
    from loopml.store.query import Field

    fields = [Field("attr", name) for name in COMPARED_ATTRIBUTES]
    for namespace in ("params", "metrics"):
        keys = sorted({key for record in records for key in getattr(record, namespace)})
        fields += [Field(namespace, key) for key in keys]
    rows = []
    for field in fields:
        values = {record.id: field_value(record, field) for record in records}
        distinct = {_comparable(v) for v in values.values()}
        differs = len(distinct) > 1 and field.name != "duration"
        rows.append({"field": str(field), "values": values, "differs": differs})
    return rows


def _comparable(value: Any) -> Any:
    """A hashable form under which equal values are equal: 1 and 1.0 match, 0.1 and 0.1000001
    do not."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        return repr(float(value))
    return json.dumps(value, sort_keys=True, default=str)


def _comparison_table(records: list[RunRecord], rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("field", no_wrap=True)
    for record in records:
        table.add_column(record.id, justify="right")
    for row in rows:
        shown = [_compare_cell(row["field"], row["values"][r.id]) for r in records]
        if row["field"] == "duration":
            shown = [render.duration(row["values"][r.id]) for r in records]
        style = "bold yellow" if row["differs"] else "dim"
        table.add_row(Text(row["field"], style=style), *[Text(c, style=style) for c in shown])
    return table


def _compare_cell(field: str, shown: Any) -> str:
    return render.param(shown) if field.startswith("params.") else render.value(shown)


@runs_app.command("artifact")
def get_artifact(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    name: Annotated[str, typer.Argument(help="Artifact name, as listed by 'loopml runs show'.")],
    to: Annotated[Path, typer.Option("--to", help="Where to write it.")] = Path("."),
) -> None:
    """Copy an artifact a run wrote to a local path, verified against its hash.

    An existing folder receives the artifact under its own name; any other path is where the
    artifact itself is written."""
    path = loopml.download_artifact(run_id, name, to)
    render.console().print(f"Wrote {path}")


@experiments_app.command("list")
def list_experiments(as_json: JsonOption = False) -> None:
    """List experiments with their number of runs."""
    records = loopml.list_experiments()
    if as_json:
        render.print_json(
            [
                {
                    "name": e.name,
                    "id": e.id,
                    "created_at": render.iso(e.created_at),
                    "runs": e.run_count,
                }
                for e in records
            ]
        )
        return
    out = render.console()
    if not records:
        out.print("No experiments yet.")
        return
    table = Table(box=None, header_style="bold")
    for header in ("name", "runs", "created"):
        table.add_column(header)
    for e in records:
        table.add_row(e.name, str(e.run_count), render.when(e.created_at))
    out.print(table)
