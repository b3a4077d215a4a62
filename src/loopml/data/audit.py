"""The data audit: can this dataset support a model of this target at all?

One streaming pass over the data splits it (temporal or random), profiles each side, counts
duplicate rows, collects the values of identifier-like columns, and keeps a seeded uniform
sample. From these come the findings:

- quality: missing values, duplicate rows, constant and near-constant columns, high
  cardinality;
- the target: class balance (classification) or its distribution (regression);
- leakage suspects: a single feature that predicts the target almost perfectly (out-of-fold,
  on the sample), an identifier whose values appear on both sides of the split, and columns
  the contract declares known only after the moment of prediction;
- the split: rows per side, the target on each side, and every column's shift between them;

and a verdict: 'ready', 'ready with warnings' or 'not ready', with its reasons.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.api import resolve, stream_of
from loopml.data.contract import Contract, load_contract
from loopml.data.profile import CategoricalSummary, NumericSummary, Profile
from loopml.data.shift import column_shift
from loopml.data.snapshots import Snapshot
from loopml.data.validate import _KeyTracker
from loopml.errors import ColumnNotFoundError, DataError, UsageError
from loopml.workspace import Workspace

SAMPLE_ROWS = 200_000
FOLDS = 5
LEAK_LINES = {"classification": (0.99, 0.95), "regression": (0.99, 0.90)}
"""Per task, the out-of-fold score (AUC; R² for regression) of one feature alone at which
it is a problem and a warning: a single feature that explains 90% of a numeric target's
variance is rare enough to check."""
COMBINED_PROBLEM, COMBINED_WARNING = 0.995, 0.98
"""The out-of-fold score of a linear fit on a few features together at which they determine
the target: a sum, a difference or a rescaling of columns known only after the outcome."""
COMBINED_GAIN = 0.005  # over the best of them alone
COMBINED_FEATURES = 8  # the strongest numeric features, fitted in pairs and all together
COMBINED_ROWS = 20_000
MISSING_WARNING, MISSING_MOSTLY = 0.2, 0.5
NEAR_CONSTANT = 0.99
HIGH_CARDINALITY = 1_000
MIN_CLASS_ROWS = 30
EXACT_LIMIT = 20_000_000
CLASS_LIMIT = 1_000  # integer targets are counted exactly up to this many distinct values
TARGET_EXPRESSION = re.compile(r"^\s*(\w+)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass
class Finding:
    """One thing the audit noticed."""

    severity: str  # problem, warning or info
    check: str
    message: str
    column: str | None = None
    value: float | None = None


@dataclass
class AuditReport:
    """Everything the audit measured, its findings and its verdict."""

    dataset: str
    target: str
    task: str
    rows: int
    split: dict[str, Any]
    verdict: str
    findings: list[Finding]
    columns: list[dict[str, Any]]
    target_summary: dict[str, Any]
    leakage: list[dict[str, Any]]
    shift: list[dict[str, Any]]
    duplicates: int
    sample_rows: int
    profiles: dict[str, Profile] = field(repr=False, default_factory=dict)
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """The messages of the problems, then of the warnings."""
        order = {"problem": 0, "warning": 1}
        ranked = sorted(
            (f for f in self.findings if f.severity in order), key=lambda f: order[f.severity]
        )
        return [f.message for f in ranked]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("profiles")
        data["reasons"] = self.reasons
        return data


def audit(
    data: Any,
    *,
    target: str,
    time_column: str | None = None,
    split: str | None = None,
    contract: str | Contract | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
    workspace: Workspace | None = None,
) -> AuditReport:
    """Audit data before modelling a target.

    target: a column, or a comparison that defines a binary target ('arr_delay > 15').
    split: 'temporal:2013-03-01' (rows before the date train, the rest test; needs a time
    column) or 'random:0.2' (the test share). Default: temporal at the 80% point of time when
    there is a time column, else random:0.2.
    """
    data = resolve(data, workspace)
    snapshot = data if isinstance(data, Snapshot) else None
    rules = load_contract(contract) if contract is not None else None
    stream = stream_of(data, workspace)
    names = stream.schema.names
    target_column, derive = _target(target, names)
    time_column = (
        time_column or (snapshot.record.time_column if snapshot else None) or (_role(rules, "time"))
    )
    _require(time_column, names, "time")
    _require_time(time_column, stream.schema)
    plan = _split_plan(split, time_column, snapshot)
    scan = _Scan(plan, target, derive, time_column, sample_rows, seed, rules)
    for batch in stream:
        scan.add(batch)
    return scan.report(snapshot.ref if snapshot else stream.description, target_column)


def _require(column: str | None, names: list[str], what: str) -> None:
    if column is not None and column not in names:
        raise ColumnNotFoundError(
            f"The {what} column {column!r} is not in the data. Its columns: {', '.join(names)}."
        )


def _require_time(column: str | None, schema: pa.Schema) -> None:
    if column is None:
        return
    kind = schema.field(column).type
    if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        raise UsageError(
            f"The time column {column!r} holds {kind}, not timestamps or dates: parse it to "
            "a timestamp first (pandas.to_datetime, with unit= for numbers of seconds or "
            "days), or audit without a time column."
        )


def _role(contract: Contract | None, role: str) -> str | None:
    if contract is None:
        return None
    found = contract.columns_with(role=role)
    return found[0] if found else None


def _target(target: str, names: list[str]) -> tuple[str, tuple[str, str, float] | None]:
    if target in names:
        return target, None
    match = TARGET_EXPRESSION.match(target)
    if match and match.group(1) in names:
        return match.group(1), (match.group(1), match.group(2), float(match.group(3)))
    raise ColumnNotFoundError(
        f"The target {target!r} is not a column of the data (nor a comparison such as "
        f"'arr_delay > 15' on one). Its columns: {', '.join(names)}."
    )


@dataclass
class _Plan:
    kind: str  # temporal or random
    cut: float | None = None  # seconds since the epoch (temporal)
    test_share: float = 0.2
    label: str = ""


def _split_plan(split: str | None, time_column: str | None, snapshot: Snapshot | None) -> _Plan:
    if split is None:
        if time_column is None:
            return _Plan("random", label="random:0.2 (the default without a time column)")
        cut = _default_cut(snapshot, time_column)
        if cut is not None:
            day = datetime.fromtimestamp(cut, tz=UTC).date().isoformat()
            return _Plan("temporal", cut, label=f"temporal:{day} (80% of time; the default)")
        return _Plan("temporal", None, label="temporal at 80% of time (the default)")
    kind, _, value = split.partition(":")
    if kind == "temporal":
        if time_column is None:
            raise UsageError(
                f"The split {split!r} needs a time column: give --time-column (or declare one "
                "when adding the snapshot, or with role: time in the contract)."
            )
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(
                f"Cannot read {value!r} in --split {split!r} as a date: use for example "
                "temporal:2013-03-01."
            ) from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return _Plan("temporal", moment.timestamp(), label=split)
    if kind == "random":
        try:
            share = float(value or 0.2)
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            raise UsageError(f"The test share in --split {split!r} must be between 0 and 1.")
        return _Plan("random", test_share=share, label=split)
    raise UsageError(f"Unknown split {split!r}: use temporal:DATE or random:SHARE.")


def _default_cut(snapshot: Snapshot | None, time_column: str) -> float | None:
    if snapshot is None:
        return None
    summary = snapshot.profile().columns_.get(time_column)
    if summary is None or not summary.count:
        return None
    return summary.quantiles([0.8])[0.8]  # type: ignore[attr-defined]


class _Scan:
    """Everything the audit gathers in its one pass over the data."""

    def __init__(
        self,
        plan: _Plan,
        target: str,
        derive: tuple[str, str, float] | None,
        time_column: str | None,
        sample_rows: int,
        seed: int,
        contract: Contract | None,
    ) -> None:
        self.plan, self.target, self.derive = plan, target, derive
        self.time_column, self.contract = time_column, contract
        self.sides = {"train": Profile(), "test": Profile()}
        self.rng = np.random.default_rng(seed)
        self.sample_rows = sample_rows
        self.sample: pa.Table | None = None
        self.sample_keys = np.zeros(0)
        self.rows = 0
        self.duplicates = _KeyTracker([], nulls_match=True)
        self.classes = _ClassCounts()
        self.duplicate_count = 0
        self.time_values: list[np.ndarray] = []
        self.identifier_hashes: dict[str, dict[str, list[np.ndarray]]] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        batch = self._with_target(batch)
        if self.plan.kind == "temporal" and self.plan.cut is None:
            self._remember_times(batch)
        test = self._test_mask(batch)
        side = pa.array(test)
        self._count_side("test", batch.filter(side))
        self._count_side("train", batch.filter(pc.invert(side)))
        if self.rows < EXACT_LIMIT:
            self.duplicates.columns = batch.schema.names
            self.duplicate_count += int(self.duplicates.duplicates(batch).sum())
        self._keep_sample(batch.append_column("_test", side))
        self.rows += batch.num_rows

    def _count_side(self, side: str, rows: pa.RecordBatch | pa.Table) -> None:
        self.sides[side].partial_fit(rows)
        self.classes.add(side, rows.column(self.target))

    def _with_target(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self.derive is None:
            return batch
        column, op, threshold = self.derive
        values = batch.column(column)
        functions = {
            ">": pc.greater,
            ">=": pc.greater_equal,
            "<": pc.less,
            "<=": pc.less_equal,
            "==": pc.equal,
            "!=": pc.not_equal,
        }
        derived = functions[op](values, pa.scalar(threshold, pa.float64()))
        return batch.append_column(self.target, derived)

    def _remember_times(self, batch: pa.RecordBatch) -> None:
        self.time_values.append(_seconds(batch.column(self.time_column)))

    def _test_mask(self, batch: pa.RecordBatch) -> np.ndarray:
        if self.plan.kind == "random":
            return self.rng.random(batch.num_rows) < self.plan.test_share
        if self.plan.cut is None:
            return np.zeros(batch.num_rows, dtype=bool)  # decided at the end from the sample
        return _seconds(batch.column(self.time_column)) >= self.plan.cut

    def _keep_sample(self, batch: pa.RecordBatch) -> None:
        """A uniform sample without replacement: the rows with the smallest random keys."""
        keys = self.rng.random(batch.num_rows)
        table = pa.Table.from_batches([batch])
        if self.sample is not None:
            table = pa.concat_tables([self.sample, table], promote_options="permissive")
            keys = np.concatenate([self.sample_keys, keys])
        if len(keys) > self.sample_rows:
            keep = np.argpartition(keys, self.sample_rows)[: self.sample_rows]
            keep.sort()
            table, keys = table.take(pa.array(keep)), keys[keep]
        self.sample, self.sample_keys = table.combine_chunks(), keys

    def report(self, dataset: str, target_column: str) -> AuditReport:
        if not self.rows:
            raise DataError(f"{dataset} has no rows to audit.")
        if self.plan.kind == "temporal" and self.plan.cut is None:
            self._split_sample_by_time()
        frame = self.sample.to_pandas() if self.sample is not None else pd.DataFrame()
        whole = self.sides["train"].merge(self.sides["test"])
        checks = _Checks(self, whole, frame, dataset)
        return checks.run()

    def _split_sample_by_time(self) -> None:
        """Cut at the 80% point of time and profile each side of the sample (kept in Arrow,
        so column types stay as they are: integers with nulls stay integers)."""
        times = np.concatenate(self.time_values) if self.time_values else np.zeros(0)
        times = times[~np.isnan(times)]
        self.plan.cut = float(np.quantile(times, 0.8)) if len(times) else 0.0
        day = datetime.fromtimestamp(self.plan.cut, tz=UTC).date().isoformat()
        self.plan.label = f"temporal:{day} (80% of time; the default)"
        table = cast(pa.Table, self.sample).drop_columns(["_test"])
        test = pa.array(_seconds(table.column(self.time_column)) >= self.plan.cut)
        self.sample = table.append_column("_test", test)
        self.sides, self.classes = {"train": Profile(), "test": Profile()}, _ClassCounts()
        self._count_side("test", table.filter(test))
        self._count_side("train", table.filter(pc.invert(test)))
        self.plan.label += "; sides profiled on the sample"


class _ClassCounts:
    """Exact counts per value of an integer target on each side of the split, kept while
    it has at most CLASS_LIMIT distinct values (beyond that it is no class label)."""

    def __init__(self) -> None:
        self.sides: dict[str, pd.Series] | None = {"train": _counts(), "test": _counts()}

    def add(self, side: str, values: pa.Array | pa.ChunkedArray) -> None:
        if self.sides is None or not pa.types.is_integer(values.type):
            return
        found = pc.value_counts(values.drop_null())
        counts = _counts(found.field("values"), found.field("counts"))
        merged = self.sides[side].add(counts, fill_value=0).astype("int64")
        if len(merged) > CLASS_LIMIT:
            self.sides = None
        else:
            self.sides[side] = merged

    def of(self, side: str | None = None) -> pd.Series | None:
        """Counts on one side, or on both (side None); None once there were too many."""
        if self.sides is None:
            return None
        if side is not None:
            return self.sides[side]
        return self.sides["train"].add(self.sides["test"], fill_value=0).astype("int64")


def _counts(values: pa.Array | None = None, counts: pa.Array | None = None) -> pd.Series:
    if values is None or counts is None:
        return pd.Series(dtype="int64")
    return pd.Series(counts.to_numpy(), index=values.to_numpy(zero_copy_only=False))


def _seconds(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[values.type.unit]
    ints = values.cast(pa.timestamp(values.type.unit)).cast(pa.int64())
    floats = pc.cast(ints, pa.float64(), safe=False)  # nanoseconds lie beyond 2**53
    return floats.fill_null(math.nan).to_numpy(zero_copy_only=False) / scale


class _Checks:
    """The findings drawn from one scan."""

    def __init__(self, scan: _Scan, whole: Profile, sample: pd.DataFrame, dataset: str) -> None:
        self.scan, self.whole, self.sample, self.dataset = scan, whole, sample, dataset
        self.findings: list[Finding] = []
        self.target = scan.target
        self.task = _task(whole[self.target])

    def add(
        self,
        severity: str,
        check: str,
        message: str,
        column: str | None = None,
        value: float | None = None,
    ) -> None:
        self.findings.append(Finding(severity, check, message, column, value))

    def run(self) -> AuditReport:
        self._quality()
        target_summary = self._target()
        leakage = self._leakage()
        self._identifiers()
        self._after_prediction()
        shift = self._split()
        severities = {f.severity for f in self.findings}
        verdict = (
            "not ready"
            if "problem" in severities
            else "ready with warnings"
            if "warning" in severities
            else "ready"
        )
        return AuditReport(
            dataset=self.dataset,
            target=self.target,
            task=self.task,
            rows=self.scan.rows,
            split=self._split_summary(),
            verdict=verdict,
            findings=self.findings,
            columns=self.whole.describe()["columns"],
            target_summary=target_summary,
            leakage=leakage,
            shift=shift,
            duplicates=self.scan.duplicate_count,
            sample_rows=len(self.sample),
            profiles={"whole": self.whole, **self.scan.sides},
            class_counts=self._class_counts_per_side(),
        )

    # --- quality --------------------------------------------------------------------------

    def _quality(self) -> None:
        rows = self.whole.rows_
        for name, summary in self.whole.columns_.items():
            rate = summary.null_rate
            if name == self.target and summary.nulls:
                self.add(
                    "warning",
                    "missing",
                    f"{summary.nulls:,} rows ({rate:.1%}) have no "
                    "target value and cannot be used for training.",
                    name,
                    rate,
                )
            elif rate == 1.0:
                self.add("problem", "missing", f"{name} has no value at all.", name, rate)
            elif rate > MISSING_MOSTLY:
                self.add(
                    "warning",
                    "missing",
                    f"{name} is missing in {rate:.0%} of rows: drop "
                    "it, or make missingness a feature.",
                    name,
                    rate,
                )
            elif rate > MISSING_WARNING:
                self.add(
                    "warning", "missing", f"{name} is missing in {rate:.0%} of rows.", name, rate
                )
            self._constancy(name, summary, rows)
        if self.scan.duplicate_count:
            share = self.scan.duplicate_count / self.scan.rows
            self.add(
                "warning" if share < 0.05 else "problem",
                "duplicates",
                f"{self.scan.duplicate_count:,} rows ({share:.1%}) repeat an earlier row exactly.",
                None,
                share,
            )

    def _constancy(self, name: str, summary: Any, rows: int) -> None:
        if name == self.target:
            return
        if summary.count and summary.distinct <= 1:
            self.add(
                "warning",
                "constant",
                f"{name} has a single value: it carries no information.",
                name,
                1.0,
            )
            return
        top = _top_share(summary)
        if top >= NEAR_CONSTANT:
            self.add(
                "warning", "near_constant", f"{name} has one value in {top:.1%} of rows.", name, top
            )
        many = summary.distinct > max(HIGH_CARDINALITY, 0.5 * summary.count)
        if summary.kind == "categorical" and many:
            self.add(
                "warning",
                "high_cardinality",
                f"{name} has {summary.distinct:,} distinct values: an identifier, or a feature "
                "that needs encoding.",
                name,
                summary.distinct,
            )

    # --- the target -----------------------------------------------------------------------

    def _target(self) -> dict[str, Any]:
        summary = self.whole[self.target]
        if self.task == "classification":
            return self._classes(summary)
        found = summary.describe()
        if summary.count and summary.kind == "numeric" and summary.std > 0:
            skew = _skew(self.sample[self.target].dropna().to_numpy(dtype=float))
            found["skew"] = skew
            if abs(skew) > 5:
                self.add(
                    "warning",
                    "target",
                    f"The target is very skewed (skew {skew:.1f}); "
                    "consider a transform or a robust loss.",
                    self.target,
                    skew,
                )
        if summary.count and summary.distinct <= 1:
            self.add(
                "problem",
                "target",
                "The target has a single value: there is nothing to learn.",
                self.target,
            )
        return found

    def _classes(self, summary: Any) -> dict[str, Any]:
        counts = _class_counts(summary, self.scan.classes.of())
        total = sum(counts.values())
        found = {"classes": {str(k): v for k, v in counts.items()}, "rows": total}
        if len(counts) < 2:
            self.add(
                "problem",
                "class_balance",
                "The target has a single class: there is nothing to learn.",
                self.target,
            )
            return found
        minority, smallest = min(counts.items(), key=lambda item: item[1])
        share = smallest / total
        found["minority"], found["minority_share"] = str(minority), share
        if smallest < MIN_CLASS_ROWS:
            self.add(
                "problem",
                "class_balance",
                f"Class {minority!s} has only {smallest} rows; "
                f"at least {MIN_CLASS_ROWS} are needed to learn and to measure it.",
                self.target,
                share,
            )
        elif share < 0.01:
            self.add(
                "problem",
                "class_balance",
                f"Class {minority!s} is {share:.2%} of rows: "
                "too rare for a plain classifier; resample or reweight.",
                self.target,
                share,
            )
        elif share < 0.05:
            self.add(
                "warning",
                "class_balance",
                f"Class {minority!s} is {share:.1%} of rows: "
                "imbalanced; judge models on AUC and calibration, not accuracy.",
                self.target,
                share,
            )
        return found

    # --- leakage --------------------------------------------------------------------------

    def _leakage(self) -> list[dict[str, Any]]:
        frame = self.sample.dropna(subset=[self.target])
        if len(frame) < 2 * FOLDS or frame[self.target].nunique() < 2:
            return []
        y = _encoded_target(frame[self.target], self.task)
        skip = {self.target, "_test", self.scan.time_column}
        if self.scan.derive is not None:
            skip.add(self.scan.derive[0])
        scores = []
        rng = np.random.default_rng(0)
        folds = rng.integers(0, FOLDS, len(frame))
        for name in frame.columns:
            if name in skip:
                continue
            score = _single_feature_score(frame[name], y, folds, self.task)
            if score is None:
                continue
            scores.append({"column": name, "score": score, "metric": self._metric})
            self._judge_leak(name, score)
            self._target_encoding(frame[name], frame[self.target], y)
        scores.sort(key=lambda item: -item["score"])
        self._combined_leaks(frame, y, folds, scores)
        return scores

    @property
    def _metric(self) -> str:
        return "AUC" if self.task == "classification" else "R²"

    def _judge_leak(self, name: str, score: float) -> None:
        problem, warning = LEAK_LINES[self.task]
        if score >= problem:
            self.add(
                "problem",
                "leakage",
                f"{name} alone predicts the target almost perfectly "
                f"({self._metric} {score:.3f} out of fold): a leak unless it is truly known "
                "at prediction time.",
                name,
                score,
            )
        elif score >= warning:
            self.add(
                "warning",
                "leakage",
                f"{name} alone predicts the target very well "
                f"({self._metric} {score:.3f}): check that it is known at prediction time.",
                name,
                score,
            )

    def _combined_leaks(
        self, frame: pd.DataFrame, y: np.ndarray, folds: np.ndarray, scores: list[dict]
    ) -> None:
        """Features that determine the target together though none does alone: a linear fit
        of the target on each pair of the strongest numeric features not already a problem
        alone, then on all of them, scored out of fold. Found once, by its smallest group."""
        if self.task == "classification" and len(np.unique(y)) != 2:
            return
        flagged = {
            f.column for f in self.findings if f.check == "leakage" and f.severity == "problem"
        }
        alone = {item["column"]: item["score"] for item in scores}
        names = [
            item["column"]
            for item in scores
            if item["column"] not in flagged
            and _is_number(frame[item["column"]])
            and frame[item["column"]].nunique() > 1
        ][:COMBINED_FEATURES]
        names.sort(key=list(frame.columns).index)  # named in the data's order
        if len(names) < 2:
            return
        rows = np.arange(len(frame))
        if len(rows) > COMBINED_ROWS:
            rows = np.sort(np.random.default_rng(1).choice(rows, COMBINED_ROWS, replace=False))
        values = frame[names].to_numpy(dtype=float)[rows]
        groups = [list(pair) for pair in itertools.combinations(range(len(names)), 2)]
        if len(names) > 2:
            groups.append(list(range(len(names))))
        explained: set[int] = set()
        for group in groups:
            if explained & set(group) and len(group) > 2:
                continue
            score = _linear_score(values[:, group], y[rows], folds[rows], self.task)
            members = [names[i] for i in group]
            if score is None or score < COMBINED_WARNING:
                continue
            if score < max(alone[name] for name in members) + COMBINED_GAIN:
                continue  # it is one of them alone, already judged as such
            explained |= set(group)
            self._judge_combination(members, values[:, group], y[rows], score)

    def _target_encoding(self, feature: pd.Series, target: pd.Series, y: np.ndarray) -> None:
        """A column that is, on the rows sharing each of its values, the mean of their target
        (a target encoding computed on these very rows, each row's own target included)."""
        if not _is_number(feature) or feature.nunique() > len(feature) / 2:
            return
        if any(f.column == feature.name for f in self.findings if f.check == "leakage"):
            return
        values = feature.to_numpy(dtype=float)
        known = np.isfinite(values)
        sizes = pd.Series(values[known]).map(pd.Series(values[known]).value_counts())
        shared = known.copy()
        shared[known] = sizes.to_numpy() >= 2
        if shared.sum() < max(10, 0.5 * len(values)):
            return
        means = pd.Series(y[shared]).groupby(values[shared]).transform("mean").to_numpy()
        scale = max(float(np.abs(y[shared]).max()), 1.0)
        matches = np.abs(means - values[shared]) <= 1e-6 * scale
        if matches.mean() >= 0.9:
            self.add(
                "problem",
                "leakage",
                f"{feature.name} is the mean target of the rows that share its value on "
                f"{matches.mean():.0%} of the rows that share one: a target encoding made "
                "on these rows, each row's own target included. Encode on past rows only.",
                str(feature.name),
                float(matches.mean()),
            )

    def _judge_combination(
        self, members: list[str], values: np.ndarray, y: np.ndarray, score: float
    ) -> None:
        together = " and ".join([", ".join(members[:-1]), members[-1]])
        identity = _identity(members, values, y) if self.task == "regression" else None
        severity = "problem" if score >= COMBINED_PROBLEM else "warning"
        how = (
            f"the target is {identity} on every row"
            if identity
            else f"a linear fit on them alone reaches {self._metric} {score:.3f} out of fold"
        )
        verdict = (
            "a leak unless they are truly known at prediction time"
            if severity == "problem"
            else "check that they are known at prediction time"
        )
        self.add(
            severity,
            "leakage",
            f"{together} together determine the target though none does alone: {how}; {verdict}.",
            " + ".join(members),
            score,
        )

    def _identifiers(self) -> None:
        frame = self.sample
        if "_test" not in frame or not frame["_test"].any() or frame["_test"].all():
            return
        for name, summary in self.whole.columns_.items():
            declared = self.scan.contract is not None and name in self.scan.contract.columns_with(
                role="identifier"
            )
            near_unique = (
                summary.count > 100
                and summary.distinct >= 0.9 * summary.count
                and (summary.type.startswith(("int", "uint", "string")))
            )
            if name == self.target or not (declared or near_unique):
                continue
            train = set(frame.loc[~frame["_test"], name].dropna())
            test = frame.loc[frame["_test"], name].dropna()
            overlap = float(test.isin(train).mean()) if len(test) else 0.0
            if overlap > 0:
                self.add(
                    "warning",
                    "identifier_leak",
                    f"Identifier {name}: {overlap:.1%} of "
                    "test rows (in the sample) share a value with training rows; the same "
                    "entity on both sides inflates test scores.",
                    name,
                    overlap,
                )

    def _after_prediction(self) -> None:
        if self.scan.contract is None:
            return
        for name in self.scan.contract.columns_with(available_at="after_prediction"):
            if name in self.whole.columns_ and name != self.target:
                self.add(
                    "warning",
                    "after_prediction",
                    f"{name} is only known after the "
                    "moment of prediction (the contract says so): exclude it from the "
                    "features.",
                    name,
                )

    # --- the split ------------------------------------------------------------------------

    def _split(self) -> list[dict[str, Any]]:
        train, test = self.scan.sides["train"], self.scan.sides["test"]
        if not train.rows_ or not test.rows_:
            side = "test" if not test.rows_ else "training"
            self.add(
                "problem",
                "split",
                f"The split leaves the {side} side empty: choose another cut.",
                None,
            )
            return []
        for side, profile in (("training", train), ("test", test)):
            if profile.rows_ < 100:
                self.add("warning", "split", f"The {side} side has only {profile.rows_} rows.")
        shifts = []
        source = self.scan.derive[0] if self.scan.derive is not None else None
        for name in train.columns:
            if name in test.columns_ and name not in (self.scan.time_column, source):
                shifts.append(column_shift(train[name], test[name]))
        shifts.sort(key=lambda item: -(item.get("psi") or 0.0))
        for item in shifts:
            psi = item.get("psi") or 0.0
            if psi > 0.25 and item["name"] != self.target:
                self.add(
                    "info",
                    "split_shift",
                    f"{item['name']} shifts between the sides (PSI {psi:.2f}).",
                    item["name"],
                    psi,
                )
            if item.get("new_categories") and item["name"] != self.target:
                self.add(
                    "info",
                    "new_categories",
                    f"{item['name']} has values in the test "
                    "side never seen in training: "
                    f"{', '.join(item['new_categories'][:5])}.",
                    item["name"],
                )
        self._target_per_side(train, test)
        return shifts

    def _target_per_side(self, train: Profile, test: Profile) -> None:
        if self.task != "classification":
            return
        classes = self.scan.classes
        a = _class_counts(train[self.target], classes.of("train"))
        b = _class_counts(test[self.target], classes.of("test"))
        if not a or not b:
            return
        positive = max(a, key=a.get) if len(a) != 2 else sorted(a, key=str)[-1]
        rate_a = a.get(positive, 0) / max(sum(a.values()), 1)
        rate_b = b.get(positive, 0) / max(sum(b.values()), 1)
        self._side_rates = (str(positive), rate_a, rate_b)
        if abs(rate_a - rate_b) > 0.1:
            self.add(
                "warning",
                "target_shift",
                f"The share of class {positive!s} moves from "
                f"{rate_a:.1%} in training to {rate_b:.1%} in test.",
                self.target,
                rate_b - rate_a,
            )

    def _class_counts_per_side(self) -> dict[str, dict[str, int]]:
        """Rows per class on each side, in the order of the classes (for the report)."""
        if self.task != "classification":
            return {}
        found = {}
        for side, profile in self.scan.sides.items():
            summary = profile.columns_.get(self.target)
            counts = _class_counts(summary, self.scan.classes.of(side)) if summary else {}
            found[side] = {str(value): count for value, count in sorted(counts.items())}
        return found

    def _split_summary(self) -> dict[str, Any]:
        train, test = self.scan.sides["train"], self.scan.sides["test"]
        found: dict[str, Any] = {
            "plan": self.scan.plan.label,
            "kind": self.scan.plan.kind,
            "train_rows": train.rows_,
            "test_rows": test.rows_,
        }
        if self.scan.plan.kind == "temporal" and self.scan.plan.cut is not None:
            found["cut"] = datetime.fromtimestamp(self.scan.plan.cut, tz=UTC).isoformat()
        rates = getattr(self, "_side_rates", None)
        if rates is not None:
            found["target_rate"] = {"class": rates[0], "train": rates[1], "test": rates[2]}
        return found


def _task(summary: Any) -> str:
    if summary.kind in ("categorical", "boolean"):
        return "classification"
    if isinstance(summary, NumericSummary) and summary.integral and summary.distinct <= 20:
        return "classification"
    if summary.kind == "numeric":
        return "regression"
    raise UsageError(
        f"The target {summary.name!r} is a {summary.kind} column; a target must be "
        "numeric, boolean or categorical."
    )


def _class_counts(summary: Any, exact: pd.Series | None) -> dict[Any, int]:
    """Rows per class: from the profile for categories and booleans, else from the exact
    counts of an integer target (in increasing order of the class)."""
    if isinstance(summary, CategoricalSummary):
        return dict(summary.top(1000))
    if isinstance(summary, NumericSummary) and exact is not None:
        return {int(value): int(count) for value, count in exact.sort_index().items()}
    return {}


def _top_share(summary: Any) -> float:
    if not summary.count:
        return 0.0
    if isinstance(summary, CategoricalSummary):
        top = summary.top(1)
        return top[0][1] / summary.count if top else 0.0
    if isinstance(summary, NumericSummary) and summary.distinct_exact and summary.distinct <= 64:
        return float(summary.histogram.counts.max()) / summary.count
    return 0.0


def _skew(values: np.ndarray) -> float:
    if len(values) < 3 or values.std() == 0:
        return 0.0
    centered = values - values.mean()
    return float((centered**3).mean() / values.std() ** 3)


def _encoded_target(values: pd.Series, task: str) -> np.ndarray:
    """Numbers for regression; class codes 0, 1, ... for classification."""
    if task == "regression":
        return values.to_numpy(dtype=float)
    return pd.factorize(values, sort=True)[0].astype(float)


def _single_feature_score(
    feature: pd.Series, y: np.ndarray, folds: np.ndarray, task: str
) -> float | None:
    """How well one feature predicts the target, out of fold, scored by AUC (binary) or R²
    (otherwise): with the target mean per bin (or category) learned on the other folds, or
    for a number by a straight line, whichever predicts better (bins blur a rescaled copy)."""
    groups = _groups(feature)
    if groups is None:
        return None
    binned = _binned_score(groups, y, folds, task)
    if not _is_number(feature) or feature.nunique() < 2:
        return binned
    line = _linear_score(feature.to_numpy(dtype=float)[:, None], y, folds, task)
    return max((s for s in (binned, line) if s is not None), default=None)


def _binned_score(groups: np.ndarray, y: np.ndarray, folds: np.ndarray, task: str) -> float | None:
    predicted = np.zeros(len(y))
    for fold in range(FOLDS):
        held = folds == fold
        means = pd.Series(y[~held]).groupby(groups[~held]).mean()
        prior = y[~held].mean() if (~held).any() else 0.0
        predicted[held] = pd.Series(groups[held]).map(means).fillna(prior).to_numpy()
    return _score(y, predicted, task)


def _score(y: np.ndarray, predicted: np.ndarray, task: str) -> float | None:
    """AUC for a binary target, else R², of predictions made out of fold."""
    if task == "classification" and len(np.unique(y)) == 2:
        return _auc(y, predicted)
    residual = ((y - predicted) ** 2).sum()
    spread = ((y - y.mean()) ** 2).sum()
    return float(1 - residual / spread) if spread > 0 else None


def _is_number(feature: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(feature) and not pd.api.types.is_bool_dtype(feature)


def _linear_score(values: np.ndarray, y: np.ndarray, folds: np.ndarray, task: str) -> float | None:
    """How well a least-squares fit of the target on these columns predicts it, out of
    fold. Missing values take the column's mean."""
    filled = np.where(np.isfinite(values), values, np.nanmean(values, axis=0))
    scale = filled.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.column_stack([np.ones(len(y)), (filled - filled.mean(axis=0)) / scale])
    predicted = np.full(len(y), y.mean())
    for fold in range(FOLDS):
        held = folds == fold
        if held.all() or not held.any():
            continue
        coefficients, *_ = np.linalg.lstsq(design[~held], y[~held], rcond=None)
        predicted[held] = design[held] @ coefficients
    return _score(y, predicted, task)


def _identity(names: list[str], values: np.ndarray, y: np.ndarray) -> str | None:
    """The target as an exact linear formula of these columns ('a + b', '2 × a - b + 3'),
    when one holds on every row without missing values; else None."""
    complete = np.isfinite(values).all(axis=1) & np.isfinite(y)
    if complete.sum() < 2 * len(names) + 2:
        return None
    design = np.column_stack([values[complete], np.ones(complete.sum())])
    coefficients, *_ = np.linalg.lstsq(design, y[complete], rcond=None)
    rounded = np.round(coefficients, 6)
    error = np.abs(design @ rounded - y[complete]).max()
    if error > 1e-6 * max(np.abs(y[complete]).max(), 1.0):
        return None
    terms = []
    for name, weight in zip([*names, ""], rounded, strict=True):
        if weight == 0:
            continue
        size = abs(float(weight))
        text = f"{size:g}" if not name else name if size == 1 else f"{size:g} × {name}"
        terms.append(("- " if weight < 0 else "+ ") + text)
    formula = " ".join(terms)
    return formula[2:] if formula.startswith("+ ") else "-" + formula[2:]


def _groups(feature: pd.Series) -> np.ndarray | None:
    """Group labels: 20 quantile bins for numbers, the values themselves otherwise."""
    if pd.api.types.is_bool_dtype(feature) or not pd.api.types.is_numeric_dtype(feature):
        if pd.api.types.is_datetime64_any_dtype(feature):
            return None
        codes, _ = pd.factorize(feature.astype(str).where(feature.notna(), "<missing>"))
        return codes
    values = feature.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, 21)[1:-1]))
    groups = np.searchsorted(edges, values, side="right")
    groups[~np.isfinite(values)] = -1
    return groups


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties share ranks), symmetric: max(AUC, 1 - AUC)."""
    ranks = pd.Series(scores).rank().to_numpy()
    positives = y == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    if not n_pos or not n_neg:
        return 0.5
    auc = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(max(auc, 1 - auc))
