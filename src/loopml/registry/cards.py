"""Model cards: what a registered version is for, who owns it, what it was trained on, how
well it does against its baselines (with intervals), where it is weak, and where it came from.
Written as Markdown and as a self-contained HTML page with plots.

The evaluation comes from the caller, or from the pipeline run that trained the version (a
step output that is an Evaluation). Limitations are found automatically: slices worse than
overall beyond their interval, slices too small to judge, groups far apart, leakage the audit
of the training snapshot warns about, and the ranges the model was trained on.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopml.evaluation.evaluate import Evaluation
from loopml.evaluation.wording import direction, number
from loopml.registry.api import get_version, lineage
from loopml.store.registry import VersionRecord
from loopml.tracking.api import child_runs, list_artifacts
from loopml.workspace import Workspace

log = logging.getLogger("loopml.registry")
FAIRNESS_RATIO = 0.8
FAIRNESS_GAP_SHARE = 0.2  # a group's error this share of the overall error from another's
RANGE_COLUMNS = 30


@dataclass
class CardFacts:
    """Everything a card says, gathered once and written twice (Markdown and HTML)."""

    record: VersionRecord
    owner: str | None
    intended_use: str | None
    lineage: dict[str, Any]
    evaluation: dict[str, Any] | None
    training: dict[str, Any] | None
    audit: dict[str, Any] | None
    limitations: list[str] = field(default_factory=list)


def gather(
    ref: str,
    workspace: Workspace,
    *,
    owner: str | None = None,
    intended_use: str | None = None,
    evaluation: Evaluation | None = None,
    audit: bool = True,
    trained_on: Any = None,
) -> CardFacts:
    """Collect the facts of a version's card. trained_on: the profile of the rows the model
    was trained on (its monitoring reference's, by default), whose ranges the card shows."""
    record = get_version(ref, workspace=workspace)
    found = lineage(record.ref, workspace=workspace)
    evaluation = evaluation or _pipeline_evaluation(found, workspace)
    facts = CardFacts(
        record,
        owner,
        intended_use,
        found,
        evaluation.to_dict() if evaluation is not None else None,
        _training(found, record, workspace, trained_on),
        _audit(found, evaluation, record, workspace) if audit else None,
    )
    facts.limitations = limitations(facts)
    return facts


def _pipeline_evaluation(found: dict[str, Any], workspace: Workspace) -> Evaluation | None:
    """The Evaluation a step of the pipeline returned: found by the output types each step
    run records, so no other output is read."""
    from loopml.pipeline.runner import output_types

    pipeline = found.get("pipeline")
    if not pipeline:
        return None
    wanted = f"{Evaluation.__module__}.{Evaluation.__qualname__}"
    for child in child_runs(pipeline["run"], workspace=workspace):
        names = {name for name, kind in output_types(child.tags).items() if kind == wanted}
        for artifact in list_artifacts(child.id, workspace=workspace) if names else []:
            if artifact.direction == "output" and artifact.name in names:
                return pickle.loads(workspace.artifacts.get_bytes(artifact.digest))
    return None


def _snapshot(found: dict[str, Any], workspace: Workspace) -> Any:
    from loopml.data.snapshots import get

    refs = list((found.get("snapshots") or {}).keys())
    return get(refs[0], workspace=workspace) if refs else None


def _training(
    found: dict[str, Any], record: VersionRecord, workspace: Workspace, trained_on: Any
) -> dict | None:
    """The training snapshot, and the ranges of the rows the model was trained on: the
    profile given, else the version's reference (its training rows), else the snapshot's."""
    snapshot = _snapshot(found, workspace)
    profile = trained_on if trained_on is not None else _reference_profile(record, workspace)
    if snapshot is None and profile is None:
        return None
    source = "training rows" if profile is not None else "snapshot"
    profile = profile if profile is not None else snapshot.profile()
    columns = {c["name"]: c for c in profile.to_dict().get("columns", [])}
    features = record.info.get("features") or list(columns)
    ranges = {}
    for name in features[:RANGE_COLUMNS]:
        column = columns.get(name) or {}
        if column.get("min") is not None and column.get("max") is not None:
            ranges[name] = [column["min"], column["max"]]
    return {
        "snapshot": snapshot.ref if snapshot else None,
        "rows": snapshot.record.rows if snapshot else None,
        "trained_rows": profile.rows_ if source == "training rows" else None,
        "ranges": ranges,
        "ranges_of": source,
    }


def _reference_profile(record: VersionRecord, workspace: Workspace) -> Any:
    """The profile of the version's monitoring reference (its training rows), if stored."""
    from loopml.errors import LoopmlError
    from loopml.registry.reference import get_reference

    try:
        return get_reference(record.ref, workspace=workspace).profile
    except LoopmlError:
        return None


def _audit(
    found: dict[str, Any],
    evaluation: Evaluation | None,
    record: VersionRecord,
    workspace: Workspace,
) -> dict[str, Any] | None:
    snapshot = _snapshot(found, workspace)
    if snapshot is None or evaluation is None or evaluation.target is None:
        return None
    from loopml.data.audit import audit

    contract = record.info.get("contract")  # the columns it declares known after prediction
    report = audit(snapshot, target=evaluation.target, contract=contract, workspace=workspace)
    features = set(record.info.get("features") or [])
    leaks = [
        f.message
        for f in report.findings
        if ("leak" in f.check or f.check == "after_prediction")
        and f.severity != "info"
        and (not features or f.column in features)
    ]
    return {"verdict": report.verdict, "reasons": list(report.reasons), "leaks": leaks}


def limitations(facts: CardFacts) -> list[str]:
    """What a reader should know before trusting the model, found from the facts."""
    found: list[str] = []
    evaluation = facts.evaluation
    if evaluation:
        primary = evaluation["primary"]
        for item in evaluation["slices"]:
            if item["worse"]:
                m = item["metrics"][primary]
                found.append(
                    f"Weak slice {item['column']}={item['value']}: {primary} {_fmt(m['value'])} "
                    f"[{_fmt(m['low'])}, {_fmt(m['high'])}], worse than the overall "
                    f"{_fmt(evaluation['metrics'][primary]['value'])} beyond its interval "
                    f"({direction(primary)})."
                )
        small = [
            f"{s['column']}={s['value']} ({s['rows']} rows)"
            for s in evaluation["slices"]
            if s["small"]
        ]
        if small:
            found.append(f"Too few rows to judge: {', '.join(small[:8])}.")
        for fairness in evaluation["fairness"]:
            found += _fairness_limitations(fairness, evaluation)
    else:
        found.append("No evaluation was recorded with this version.")
    if facts.audit:
        found += [f"Audit of the training data: {leak}" for leak in facts.audit["leaks"]]
    if facts.training and facts.training["ranges"]:
        spans = (
            "The rows the model was trained on span these ranges"
            if facts.training["ranges_of"] == "training rows"
            else "The training snapshot spans these ranges"
        )
        found.append(
            f"{spans}; inputs outside them are extrapolation: "
            + ", ".join(
                f"{k} {_fmt(a)} to {_fmt(b)}" for k, (a, b) in facts.training["ranges"].items()
            )
            + "."
        )
    if not facts.record.info.get("contract"):
        found.append("Saved without an input contract: inputs are not validated.")
    return found


def _fairness_limitations(fairness: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    """Groups far apart: a classifier's rates below the four-fifths ratio; a regressor's
    error whose gap between groups is beyond chance and a fair share of the overall error."""
    found = []
    for rate, ratio in fairness["ratios"].items():
        if ratio["value"] is not None and ratio["value"] < FAIRNESS_RATIO:
            found.append(
                f"{rate} differs across {fairness['column']}: smallest/largest ratio "
                f"{_fmt(ratio['value'])} (below {FAIRNESS_RATIO})."
            )
    gap, overall = fairness["differences"].get("mae"), evaluation["metrics"].get("mae")
    measured = gap and overall and gap["low"] is not None and overall["value"]
    if measured and gap["low"] > 0 and gap["value"] > FAIRNESS_GAP_SHARE * overall["value"]:
        found.append(
            f"mae differs across {fairness['column']}: the largest gap between groups is "
            f"{_interval(gap)}, against an overall mae of {_fmt(overall['value'])}."
        )
    return found


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return number(value)


def markdown(facts: CardFacts) -> str:
    """The card as Markdown."""
    record, lines = facts.record, []
    lines += [f"# Model card: {record.ref}", ""]
    lines += [
        f"- **Owner**: {facts.owner or 'not given'}",
        f"- **Intended use**: {facts.intended_use or 'not given'}",
        f"- **Flavor**: {record.flavor}; task {record.info.get('task') or '-'}",
        f"- **Registered**: {_when(record.created_at)} by {record.created_by}",
        f"- **Aliases**: {', '.join(record.aliases) or 'none'}",
        "",
    ]
    lines += _markdown_training(facts)
    lines += _markdown_evaluation(facts.evaluation)
    lines += ["## Limitations", ""] + [f"- {item}" for item in facts.limitations] + [""]
    lines += _markdown_lineage(facts.lineage, record)
    return "\n".join(lines)


def _markdown_training(facts: CardFacts) -> list[str]:
    lines = ["## Training data", ""]
    if facts.training is None:
        return [*lines, "No training snapshot is recorded.", ""]
    training = facts.training
    if training["snapshot"]:
        lines.append(f"Snapshot `{training['snapshot']}`, {training['rows']:,} rows.")
    if training["trained_rows"]:
        lines.append(f"Trained on {training['trained_rows']:,} rows of it.")
    if facts.audit:
        lines.append(f"Audit verdict: **{facts.audit['verdict']}**.")
        lines += [f"- {reason}" for reason in facts.audit["reasons"]]
    return [*lines, ""]


def _markdown_evaluation(evaluation: dict[str, Any] | None) -> list[str]:
    if evaluation is None:
        return []
    level = f"{evaluation['level']:.0%}"
    lines = [
        "## Evaluation",
        "",
        f"{evaluation['rows']:,} rows, {level} bootstrap intervals "
        f"({evaluation['resamples']} resamples).",
        "",
    ]
    names = list(evaluation["metrics"])
    header = [
        "metric",
        "model",
        *evaluation["baselines"],
        *(f"vs {b}" for b in evaluation["differences"]),
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [name, _interval(evaluation["metrics"][name])]
        cells += [_interval(found[name]) for found in evaluation["baselines"].values()]
        cells += [_interval(found[name]) for found in evaluation["differences"].values()]
        lines.append("| " + " | ".join(cells) + " |")
    primary = evaluation["primary"]
    if evaluation["slices"]:
        lines += [
            "",
            f"### Slices ({primary}, worst first)",
            "",
            "| slice | rows | value | flags |",
            "|---|---|---|---|",
        ]
        for item in evaluation["slices"][:15]:
            flags = ", ".join(
                f for f, on in (("worse", item["worse"]), ("small", item["small"])) if on
            )
            lines.append(
                f"| {item['column']}={item['value']} | {item['rows']:,} | "
                f"{_interval(item['metrics'][primary])} | {flags} |"
            )
    for fairness in evaluation["fairness"]:
        lines += _markdown_fairness(fairness)
    return [*lines, ""]


def _markdown_fairness(fairness: dict[str, Any]) -> list[str]:
    rates = list(fairness["differences"])
    lines = [
        "",
        f"### Fairness across {fairness['column']}",
        "",
        "| group | rows | " + " | ".join(RATE_NAMES.get(r, r) for r in rates) + " |",
        "|---|---|" + "---|" * len(rates),
    ]
    for group, found in fairness["groups"].items():
        cells = [_interval(found[rate]) for rate in rates]
        lines.append(f"| {group} | {fairness['rows'][group]:,} | " + " | ".join(cells) + " |")
    cells = [_interval(fairness["differences"][rate]) for rate in rates]
    lines.append("| largest − smallest | | " + " | ".join(cells) + " |")
    return lines


RATE_NAMES = {
    "selection_rate": "selection rate",
    "tpr": "TPR",
    "fpr": "FPR",
    "mae": "MAE",
    "mean_prediction": "mean prediction",
    "mean_target": "mean target",
}


def _interval(found: dict[str, Any]) -> str:
    return f"{_fmt(found['value'])} [{_fmt(found['low'])}, {_fmt(found['high'])}]"


def _markdown_lineage(found: dict[str, Any], record: VersionRecord) -> list[str]:
    lines = ["## Lineage", "", f"- Model artifact: sha256 `{record.digest}`"]
    if found.get("run"):
        lines.append(f"- Run `{found['run']['id']}` ({found['run']['name']})")
    if found.get("pipeline"):
        lines.append(f"- Pipeline `{found['pipeline']['ref']}`, run `{found['pipeline']['run']}`")
    for snapshot, digest in (found.get("snapshots") or {}).items():
        lines.append(f"- Snapshot `{snapshot}` (sha256 `{digest[:12]}`)")
    code = found.get("code") or {}
    if code.get("git_commit"):
        dirty = " with uncommitted changes" if code.get("git_dirty") else ""
        lines.append(f"- Code: git commit `{code['git_commit']}`{dirty}")
    return [*lines, ""]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def html(facts: CardFacts) -> str:
    """The card as one self-contained HTML page with plots."""
    from loopml.reports.html import render

    return render(
        "card.html.j2",
        facts=facts,
        e=facts.evaluation,
        registered=_when(facts.record.created_at),
        rate_names=RATE_NAMES,
        figures=_figures(facts.evaluation),
    )


def _figures(evaluation: dict[str, Any] | None) -> dict[str, Any]:
    if evaluation is None:
        return {}
    import plotly.graph_objects as go  # imported on use: plotly is large

    figures = {"metrics": _metrics_figure(go, evaluation)}
    if evaluation["slices"]:
        figures["slices"] = _slices_figure(go, evaluation)
    return figures


def _error_bar(found: dict[str, Any]) -> tuple[float, float, float]:
    value = found["value"] if found["value"] is not None else math.nan
    low = found["low"] if found["low"] is not None else value
    high = found["high"] if found["high"] is not None else value
    return value, value - low, high - value


def _metrics_figure(go: Any, evaluation: dict[str, Any]) -> Any:
    figure = go.Figure()
    names = list(evaluation["metrics"])
    series = {"model": evaluation["metrics"], **evaluation["baselines"]}
    for label, found in series.items():
        values = [_error_bar(found[name]) for name in names]
        figure.add_trace(
            go.Scatter(
                x=[v[0] for v in values],
                y=names,
                mode="markers",
                name=label,
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [v[2] for v in values],
                    "arrayminus": [v[1] for v in values],
                },
            )
        )
    figure.update_layout(
        title="Metrics with intervals, model and baselines",
        height=380,
        margin={"l": 90, "r": 20, "t": 50, "b": 40},
    )
    return figure


def _slices_figure(go: Any, evaluation: dict[str, Any]) -> Any:
    primary = evaluation["primary"]
    items = list(reversed(evaluation["slices"]))
    values = [_error_bar(item["metrics"][primary]) for item in items]
    colors = ["#c0352b" if s["worse"] else "#98a2b3" if s["small"] else "#3b6fb6" for s in items]
    figure = go.Figure(
        go.Scatter(
            x=[v[0] for v in values],
            y=[f"{s['column']}={s['value']}" for s in items],
            mode="markers",
            marker={"color": colors},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [v[2] for v in values],
                "arrayminus": [v[1] for v in values],
            },
        )
    )
    overall = evaluation["metrics"][primary]["value"]
    figure.add_vline(x=overall, line_dash="dash", annotation_text="overall")
    figure.update_layout(
        title=f"{primary} by slice (red: worse beyond the interval; grey: small)",
        height=120 + 22 * len(items),
        margin={"l": 140, "r": 20, "t": 50, "b": 40},
    )
    return figure


def write_card(
    ref: str,
    *,
    owner: str | None = None,
    intended_use: str | None = None,
    evaluation: Evaluation | None = None,
    audit: bool = True,
    trained_on: Any = None,
    workspace: Workspace | None = None,
) -> dict[str, Any]:
    """Generate a version's card, store it (Markdown and HTML) and record it with the
    version; returns where it is stored. trained_on: the profile of the training rows."""
    from loopml.registry import operations as ops
    from loopml.workspace import current_workspace

    workspace = workspace or current_workspace()
    facts = gather(
        ref,
        workspace,
        owner=owner,
        intended_use=intended_use,
        evaluation=evaluation,
        audit=audit,
        trained_on=trained_on,
    )
    card = ops.Card(
        markdown=workspace.artifacts.put_bytes(markdown(facts).encode()),
        html=workspace.artifacts.put_bytes(html(facts).encode()),
        owner=owner,
        intended_use=intended_use,
    )
    ops.set_card(workspace.metadata, facts.record.name, facts.record.version, card)
    return asdict(card)


class CardNotWrittenWarning(UserWarning):
    """A version was registered, but its card could not be written."""


def write_card_of_new_version(
    record: VersionRecord, *, workspace: Workspace, **options: Any
) -> None:
    """Write the card of a version just registered. The version stands whatever happens
    here: a card that cannot be written is a warning that says how to write it later, not
    an error after which a retry would register the model twice."""
    import warnings

    try:
        write_card(record.ref, workspace=workspace, **options)
    except Exception as error:
        warnings.warn(
            f"{record.ref} is registered, but its model card could not be written: {error}. "
            f"Write it with 'loopml models card {record.ref} --write'.",
            CardNotWrittenWarning,
            stacklevel=3,
        )
        log.exception("the card of %s could not be written", record.ref)


def read_card(ref: str, kind: str = "markdown", *, workspace: Workspace | None = None) -> str:
    """The stored card of a version, as Markdown or HTML."""
    from loopml.errors import ArtifactNotFoundError, UsageError
    from loopml.workspace import current_workspace

    if kind not in ("markdown", "html"):
        raise UsageError(f"A card is 'markdown' or 'html', not {kind!r}.")
    workspace = workspace or current_workspace()
    record = get_version(ref, workspace=workspace)
    if not record.card:
        raise ArtifactNotFoundError(
            f"{record.ref} has no model card yet; write one with 'loopml models card {record.ref} "
            "--write'."
        )
    return workspace.artifacts.get_bytes(record.card[kind]).decode()
