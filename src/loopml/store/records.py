"""Plain records read from the metadata store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RUN_STATUSES = ("running", "finished", "failed", "killed")
ENDED_STATUSES = ("finished", "failed", "killed")


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An experiment: a named group of runs."""

    id: str
    name: str
    created_at: float
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One tracked run as stored: attributes, params, latest metric values and tags."""

    id: str
    experiment: str
    name: str | None
    parent_id: str | None
    status: str
    start_time: float
    end_time: float | None
    seed: int | None
    git_commit: str | None
    git_dirty: bool | None
    host: str
    pid: int
    user: str
    command: str
    python_version: str
    environment_id: str | None
    error: str | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while running."""
        return None if self.end_time is None else self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus the duration."""
        return {**asdict(self), "duration": self.duration}


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """The latest value of one metric of a run, with its step and number of values."""

    key: str
    value: float
    step: int
    timestamp: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged metric value."""

    step: int
    timestamp: float
    value: float


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """An artifact a run wrote ('output') or read ('input'), by content hash."""

    run_id: str
    direction: str
    name: str
    digest: str
    kind: str
    size: int
    source: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """A named dataset with its number of snapshots and its newest one."""

    id: str
    name: str
    created_at: float
    snapshot_count: int
    latest_snapshot: str | None
    latest_rows: int | None
    latest_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """An immutable, content-addressed version of a dataset, stored as Parquet."""

    id: str
    dataset: str
    digest: str
    rows: int
    size: int
    schema: list[dict[str, str]]
    profile_digest: str
    time_column: str | None
    source: str
    parent_id: str | None
    run_id: str | None
    created_by: str
    created_at: float

    @property
    def ref(self) -> str:
        """The reference that names this snapshot: dataset@id."""
        return f"{self.dataset}@{self.id}"

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return [column["name"] for column in self.schema]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus the reference."""
        return {**asdict(self), "ref": self.ref}
