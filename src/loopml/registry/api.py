"""The model registry: register versions, move aliases, roll back, read the audit log.

A reference is ``NAME`` (the latest version), ``NAME@3`` (a version) or ``NAME@champion``
(whatever an alias points at). Every change — a new version, an alias set or moved, a
rollback — is one transaction that also appends to the model's audit log: who, when, from
which version to which, and why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loopml.errors import ArtifactNotFoundError, InvalidValueError, UsageError
from loopml.registry import operations as ops
from loopml.registry.operations import check_alias, check_model_name
from loopml.registry.operations import require_model as require_model  # used by serving, loop
from loopml.registry.saved import INFO_FILE, ModelInfo, load_model, save_model
from loopml.store.pages import every
from loopml.store.records import ArtifactRecord
from loopml.store.registry import RegistryEvent, VersionRecord
from loopml.tracking import artifacts as content
from loopml.tracking.api import child_runs, get_run, list_artifacts
from loopml.tracking.environment import current_user
from loopml.workspace import Workspace, current_workspace


def register(
    name: str,
    model: Any = None,
    *,
    run: str | None = None,
    artifact: str = "model",
    contract: Any = None,
    reference: Any = None,
    target: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    intended_use: str | None = None,
    evaluation: Any = None,
    card: bool = True,
    workspace: Workspace | None = None,
) -> VersionRecord:
    """Register a new version of a model: a model object, or the output named ``artifact``
    of a run (or of one of its steps). Returns the version, numbered 1, 2, ...

    A model card is written for the version (card=False skips it): owner and intended_use
    are the caller's words; the evaluation is ``evaluation`` or the one its pipeline made.

    reference: data like the training data (a frame, a file, a snapshot, or the name of an
    output of ``run`` or of its steps), stored with the version as the baseline its traffic
    is monitored against; ``target`` names its label column, for feature importance.
    """
    workspace = workspace or current_workspace()
    check_model_name(name)
    if (model is None) == (run is None):
        raise UsageError("Register either a model object or the output of a run (run=...).")
    run_id = None
    if run is not None:
        run_id, model = _model_of_run(run, artifact, workspace)
    digest, info = _store(model, contract, workspace)
    baseline = stored = None
    if reference is not None:  # built first: a refused reference leaves no version behind
        from loopml.registry.reference import make_reference, store_reference

        data = _reference_data(reference, run, workspace)
        baseline = make_reference(
            model, data, features=info.features, target=target, workspace=workspace
        )
        stored = (store_reference(baseline, workspace), baseline.rows)
    # the version and its reference in one transaction: never one without the other
    record = _add_version(name, digest, info, run_id, description, workspace, stored)
    if card:
        from loopml.registry.cards import write_card_of_new_version

        write_card_of_new_version(
            record,
            owner=owner,
            intended_use=intended_use,
            evaluation=evaluation,
            trained_on=baseline.profile if baseline is not None else None,
            workspace=workspace,
        )
        record = get_version(record.ref, workspace=workspace)
    return record


def _model_of_run(run: str, artifact: str, workspace: Workspace) -> tuple[str, Any]:
    """The run (or step run under it) that wrote ``artifact``, and the model it holds."""
    record = get_run(run, workspace=workspace)
    candidates = [record, *child_runs(record.id, workspace=workspace)]
    for candidate in candidates:
        for found in list_artifacts(candidate.id, workspace=workspace):
            if found.direction == "output" and found.name == artifact:
                return candidate.id, _artifact_model(found, workspace)
    raise ArtifactNotFoundError(
        f"Run {record.id} and its steps have no output named {artifact!r}. Name the model's "
        "output with --artifact."
    )


def _reference_data(reference: Any, run: str | None, workspace: Workspace) -> Any:
    """The reference itself, or the output of the run (or of one of its steps) it names."""
    if run is None or not isinstance(reference, str) or Path(reference).exists():
        return reference
    record = get_run(run, workspace=workspace)
    for candidate in [record, *child_runs(record.id, workspace=workspace)]:
        for found in list_artifacts(candidate.id, workspace=workspace):
            if found.direction == "output" and found.name == reference:
                return content.load(workspace.artifacts, found, None)
    return reference


def _artifact_model(found: ArtifactRecord, workspace: Workspace) -> Any:
    if found.kind == "pickle":
        return content.load(workspace.artifacts, found, None)
    if found.kind == "directory":
        folder = content.materialize(workspace.artifacts, found, None)
        return load_model(folder)[0]
    raise InvalidValueError(
        f"The output {found.name!r} of run {found.run_id} is a {found.kind}, not a model."
    )


def _store(model: Any, contract: Any, workspace: Workspace) -> tuple[str, ModelInfo]:
    with tempfile.TemporaryDirectory(prefix="loopml-model-") as scratch:
        folder = Path(scratch) / "model"
        info = save_model(model, folder, contract=contract)
        stored = content.store_content(workspace.artifacts, folder)
    return stored.digest, info


def _add_version(
    name: str,
    digest: str,
    info: ModelInfo,
    run_id: str | None,
    description: str | None,
    workspace: Workspace,
    reference: tuple[str, int] | None = None,
) -> VersionRecord:
    """Add the version (and its reference's record: digest and rows) in one transaction."""
    version = ops.NewVersion(digest, info.flavor, asdict(info), current_user(), run_id, description)
    stored = ops.StoredReference(*reference) if reference is not None else None
    return ops.register_version(workspace.metadata, name, version, stored)


def get_version(ref: str, *, workspace: Workspace | None = None) -> VersionRecord:
    """The version a reference names: NAME (latest), NAME@VERSION or NAME@ALIAS."""
    name, _, which = ref.partition("@")
    return ops.get_version((workspace or current_workspace()).metadata, name, which or None)


def version_numbers(
    name: str, selectors: list[str], *, workspace: Workspace | None = None
) -> dict[str, int]:
    """The version each selector (a number or an alias) of one model names, read in one
    transaction without loading the versions: what a server checks every few seconds.
    Selectors that name no version are left out."""
    store = (workspace or current_workspace()).metadata
    return ops.version_numbers(store, name, list(selectors))


def load(ref: str, *, workspace: Workspace | None = None) -> Any:
    """The model object of a version, its bytes verified against their hashes."""
    workspace = workspace or current_workspace()
    record = get_version(ref, workspace=workspace)
    folder = _materialize(record, workspace)
    return load_model(folder)[0]


def _materialize(record: VersionRecord, workspace: Workspace) -> Path:
    found = ArtifactRecord(
        record.run_id or "", "output", "model", record.digest, "directory", 0, None, 0.0
    )
    folder = content.materialize(workspace.artifacts, found, None)
    if not (folder / INFO_FILE).exists():
        raise InvalidValueError(f"{record.ref} is not stored as a saved model.")
    return folder


def list_models(*, workspace: Workspace | None = None) -> list[dict[str, Any]]:
    """Every model: its latest version, how many there are, and its aliases."""
    found = list(every(ops.list_models, (workspace or current_workspace()).metadata))
    return [asdict(model) for model in found]


def versions(name: str, *, workspace: Workspace | None = None) -> list[VersionRecord]:
    """Every version of a model, oldest first."""
    return list(every(ops.versions, (workspace or current_workspace()).metadata, name))


def set_alias(
    name: str,
    alias: str,
    version: int,
    *,
    reason: str | None = None,
    action: str = "alias",
    expected: int | None = None,
    workspace: Workspace | None = None,
) -> RegistryEvent | None:
    """Point an alias (champion, challenger, ...) at a version; recorded in the audit log.
    With ``expected``, only if the alias still points at that version (0: only if it points
    at none), else None and nothing changed: a decision taken on what the alias was never
    overwrites a move (a rollback) made meanwhile."""
    check_alias(alias)
    store = (workspace or current_workspace()).metadata
    return ops.set_alias(store, name, alias, version, current_user(), reason, action, expected)


def rollback(
    name: str,
    alias: str = "champion",
    *,
    reason: str | None = None,
    expected: int | None = None,
    workspace: Workspace | None = None,
) -> RegistryEvent | None:
    """Return an alias to the version it pointed at before its current one, in one
    transaction. Rolling back again goes further back. With ``expected``, only if the alias
    still points at that version (None, and nothing changed, otherwise): of several
    processes that judge the same version at once, one rolls it back."""
    store = (workspace or current_workspace()).metadata
    return ops.rollback(store, name, alias, current_user(), reason, expected)


def history(name: str, *, workspace: Workspace | None = None) -> list[RegistryEvent]:
    """A model's audit log, oldest first."""
    return list(every(ops.history, (workspace or current_workspace()).metadata, name))


def lineage(ref: str, *, workspace: Workspace | None = None) -> dict[str, Any]:
    """Where a version came from: its run, the pipeline run above it, the snapshots they
    read, and the code version (git commit) of the run."""
    workspace = workspace or current_workspace()
    record = get_version(ref, workspace=workspace)
    found: dict[str, Any] = {"ref": record.ref, "digest": record.digest, "run": None}
    if record.run_id is None:
        return found
    runs = [get_run(record.run_id, workspace=workspace)]
    while runs[-1].parent_id is not None:
        runs.append(get_run(runs[-1].parent_id, workspace=workspace))
    step = runs[0]
    pipeline = next((r for r in runs if r.tags.get("loopml.kind") == "pipeline"), None)
    snapshots = {
        a.name: a.digest
        for r in runs
        for a in list_artifacts(r.id, workspace=workspace)
        if a.direction == "input" and a.kind == "snapshot"
    }
    found["run"] = {"id": step.id, "name": step.name, "status": step.status}
    found["pipeline"] = (
        {"run": pipeline.id, "name": pipeline.name, "ref": pipeline.tags.get("loopml.pipeline")}
        if pipeline
        else None
    )
    found["snapshots"] = snapshots
    found["code"] = {"git_commit": step.git_commit, "git_dirty": step.git_dirty}
    return found
