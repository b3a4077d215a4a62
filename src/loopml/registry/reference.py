"""The reference a model version's traffic is compared with: what it was trained on.

Stored with the version (``register(..., reference=data)`` or ``set_reference``), it holds
- the profile of the model's input columns over every reference row (streamed, any size);
- the profile of the model's own scores on those rows, the baseline of prediction drift
  (scored on at most ``SCORED`` rows, drawn at random);
- a random sample of at most ``SAMPLE`` rows with their scores, for exact tests and the
  correlation check;
- when the reference holds the target: each feature's permutation importance on (part of)
  the sample, so alert rules can watch the most important features.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.data.profile import Profile
from loopml.errors import ColumnNotFoundError, InvalidValueError, UsageError
from loopml.workspace import Workspace, current_workspace

SAMPLE = 5_000
SCORED = 100_000
IMPORTANCE_ROWS = 1_000
IMPORTANCE_REPEATS = 2
IMPORTANCE_CELLS = 5_000_000  # values per prediction of shuffled copies, to bound memory
FORMAT = 1


@dataclass
class Reference:
    """The reference data of one model version."""

    profile: Profile
    scores: Profile | None
    sample: pd.DataFrame
    rows: int
    importance: dict[str, float] = field(default_factory=dict)
    target: str | None = None
    seed: int = 0

    @property
    def features(self) -> list[str]:
        return self.profile.columns

    def top_features(self, count: int) -> list[str]:
        """The ``count`` most important features (all of them, in order, without importance)."""
        if not self.importance:
            return self.features[:count]
        ranked = sorted(self.importance, key=lambda name: -self.importance[name])
        return ranked[:count]

    def to_bytes(self) -> tuple[bytes, bytes]:
        """The reference as JSON and its sample as Parquet."""
        head = {
            "format": FORMAT,
            "profile": self.profile.to_dict(),
            "scores": self.scores.to_dict() if self.scores is not None else None,
            "rows": self.rows,
            "importance": self.importance,
            "target": self.target,
            "seed": self.seed,
        }
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(self.sample, preserve_index=False), buffer)
        return json.dumps(head, default=float).encode(), buffer.getvalue()

    @classmethod
    def from_bytes(cls, head: bytes, sample: bytes) -> Reference:
        data = json.loads(head)
        scores = data["scores"]
        return cls(
            profile=Profile.from_dict(data["profile"]),
            scores=Profile.from_dict(scores) if scores is not None else None,
            sample=pq.read_table(io.BytesIO(sample)).to_pandas(),
            rows=data["rows"],
            importance=data["importance"],
            target=data["target"],
            seed=data["seed"],
        )


def make_reference(
    model: Any,
    data: Any,
    *,
    features: list[str] | None = None,
    target: str | None = None,
    seed: int = 0,
    workspace: Workspace | None = None,
) -> Reference:
    """Build the reference of a model from data like its training data.

    data: a DataFrame, an Arrow table, a file, or a snapshot reference. features: the
    model's input columns (default: the model's ``feature_names_in_``, else every column
    but the target). target: the label column, for the features' permutation importance.
    """
    from loopml.data.api import stream_of

    stream = stream_of(data, workspace)
    columns = _features(model, stream.schema.names, features, target)
    profile, rows, sample = Profile(), 0, Reservoir(SCORED, seed)
    for batch in stream.batches:
        batch = _select(batch, columns + ([target] if target else []))
        profile.partial_fit(batch.select(columns))
        rows += batch.num_rows
        sample.add(batch)
    if not rows:
        raise InvalidValueError("The reference data has no rows.")
    scored = sample.frame()
    scores = _scores(model, scored[columns])
    scored["__score__"] = scores
    kept = scored.sample(n=min(SAMPLE, len(scored)), random_state=seed).reset_index(drop=True)
    return Reference(
        profile=profile,
        scores=Profile().fit(pd.DataFrame({"score": scores})),
        sample=kept,
        rows=rows,
        importance=_importance(model, kept, columns, target, seed) if target else {},
        target=target,
        seed=seed,
    )


def _features(
    model: Any, available: list[str], features: list[str] | None, target: str | None
) -> list[str]:
    if target is not None and target not in available:
        raise ColumnNotFoundError(
            f"The reference data has no target column {target!r}. Its columns: "
            f"{', '.join(available)}."
        )
    wanted = features or getattr(model, "feature_names_in_", None)
    if wanted is None:
        return [name for name in available if name != target]
    wanted = [str(name) for name in wanted]
    missing = [name for name in wanted if name not in available]
    if missing:
        raise ColumnNotFoundError(
            f"The reference data lacks the model's input columns: {', '.join(missing)}."
        )
    return wanted


def _select(batch: pa.RecordBatch | pa.Table, names: list[str]) -> pa.Table:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    return table.select(names)


class Reservoir:
    """A uniform random sample of at most ``size`` rows of a stream (Algorithm R by blocks:
    each batch's rows get random keys; the ``size`` smallest keys are kept)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.random = size, np.random.default_rng(seed)
        self.kept: pa.Table | None = None
        self.keys = np.empty(0)

    def add(self, table: pa.Table) -> None:
        keys = self.random.random(table.num_rows)
        merged = table if self.kept is None else pa.concat_tables([self.kept, table])
        keys = np.concatenate([self.keys, keys])
        if len(keys) > self.size:
            keep = np.sort(np.argpartition(keys, self.size)[: self.size])
            merged, keys = merged.take(pa.array(keep)), keys[keep]
        self.kept, self.keys = merged, keys

    def frame(self) -> pd.DataFrame:
        return self.kept.to_pandas() if self.kept is not None else pd.DataFrame()


def _scores(model: Any, frame: pd.DataFrame) -> np.ndarray:
    try:
        if hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(frame))[:, -1].astype(np.float64)
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(-1)
    except Exception as error:
        raise InvalidValueError(
            f"The model failed to score its reference data: {type(error).__name__}: {error}"
        ) from None


def _importance(
    model: Any, sample: pd.DataFrame, columns: list[str], target: str, seed: int
) -> dict[str, float]:
    """Permutation importance on at most IMPORTANCE_ROWS rows of the sample: how much the
    model's score (AUC, or R² for a regressor) falls when one feature's values are shuffled,
    the mean of IMPORTANCE_REPEATS shuffles. Every shuffled copy is scored in a few large
    predictions rather than one per feature and shuffle."""
    from sklearn.metrics import r2_score, roc_auc_score

    known = sample[sample[target].notna()].head(IMPORTANCE_ROWS).reset_index(drop=True)
    y = known[target].to_numpy()
    classifies = hasattr(model, "predict_proba")
    if len(known) < 50 or (classifies and len(np.unique(y)) != 2):
        return {}
    score = roc_auc_score if classifies else r2_score
    features = known[columns]
    baseline = score(y, _scores(model, features))
    random = np.random.default_rng(seed)
    shuffles = [(name, random.permutation(len(known))) for name in columns]
    shuffles *= IMPORTANCE_REPEATS
    drops: dict[str, list[float]] = {name: [] for name in columns}
    per_call = max(1, IMPORTANCE_CELLS // max(len(known) * len(columns), 1))
    for start in range(0, len(shuffles), per_call):
        chunk = shuffles[start : start + per_call]
        copies = []
        for name, order in chunk:
            copy = features.copy()
            copy[name] = features[name].to_numpy()[order]
            copies.append(copy)
        scores = _scores(model, pd.concat(copies, ignore_index=True)).reshape(len(chunk), -1)
        for (name, _), scored in zip(chunk, scores, strict=True):
            drops[name].append(baseline - score(y, scored))
    return {name: float(np.mean(values)) for name, values in drops.items()}


def set_reference(
    ref: str,
    data: Any,
    *,
    target: str | None = None,
    seed: int = 0,
    workspace: Workspace | None = None,
) -> Reference:
    """Compute and store the reference of a registered version (replacing any before)."""
    from loopml.registry import operations as ops
    from loopml.registry.api import get_version, load

    workspace = workspace or current_workspace()
    record = get_version(ref, workspace=workspace)
    if isinstance(data, Reference):
        found = data
    else:
        model = load(record.ref, workspace=workspace)
        features = record.info.get("features")
        found = make_reference(model, data, features=features, target=target, seed=seed)
    stored = ops.StoredReference(store_reference(found, workspace), found.rows)
    ops.set_reference(workspace.metadata, record.name, record.version, stored)
    return found


def store_reference(found: Reference, workspace: Workspace) -> str:
    """Store a reference's bytes in the artifact store; returns the digest its version's
    record names (bytes first: a record never names bytes that are not there)."""
    head, sample = found.to_bytes()
    parts = {
        "head": workspace.artifacts.put_bytes(head),
        "sample": workspace.artifacts.put_bytes(sample),
    }
    return workspace.artifacts.put_bytes(json.dumps(parts).encode())


def get_reference(ref: str, *, workspace: Workspace | None = None) -> Reference:
    """The stored reference of a version; a clear error when it has none."""
    from loopml.registry import operations as ops
    from loopml.registry.api import get_version

    workspace = workspace or current_workspace()
    record = get_version(ref, workspace=workspace)
    found = ops.get_reference(workspace.metadata, record.name, record.version)
    if found is None:
        raise UsageError(
            f"{record.ref} has no reference data, so its traffic cannot be checked for drift. "
            f"Store one with 'loopml models reference {record.ref} TRAINING_DATA'."
        )
    parts = json.loads(workspace.artifacts.get_bytes(found.digest))
    return Reference.from_bytes(
        workspace.artifacts.get_bytes(parts["head"]), workspace.artifacts.get_bytes(parts["sample"])
    )
