"""A registered version made ready to serve: the model, the contract its requests must meet,
and one predict call that returns scores and labels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.contract import ColumnRule, Contract, load_contract
from loopml.data.validate import Validator
from loopml.evaluation.scoring import feature_frame
from loopml.registry.api import get_version, load
from loopml.serving.payloads import PayloadError, problem
from loopml.store.registry import VersionRecord
from loopml.workspace import Workspace

V2_DATATYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL"}
QUICK_ROWS = 64  # requests up to this many rows are first checked value by value


class QuickCheck:
    """A contract compiled for a few rows of JSON values, checked value by value in Python.

    It only ever says that rows pass: when a value breaks a rule, or the contract has a rule
    it does not know (times, unique keys, row bounds, non-text categories), it answers False
    and the contract's own validator runs and says what is wrong. So it never changes a
    verdict, only how fast a good request gets it.
    """

    def __init__(self, contract: Contract | None) -> None:
        self.rules = [] if contract is None else list(contract.columns.items())
        self.usable = contract is not None and all(_quick(rule) for _, rule in self.rules)
        if contract is not None and (contract.unique or contract.rows is not None):
            self.usable = False
        self.allowed = {
            name: {str(c) for c in rule.categories}
            for name, rule in self.rules
            if rule.categories is not None
        }

    def passes(self, columns: dict[str, list[Any]]) -> bool:
        if not self.usable:
            return False
        for name, rule in self.rules:
            values = columns.get(name)
            if values is None or not all(self._fits(name, rule, v) for v in values):
                return False
        return True

    def _fits(self, name: str, rule: ColumnRule, value: Any) -> bool:
        if value is None:
            return rule.nullable
        kind = type(value)
        if rule.type == "string":
            return kind is str and (name not in self.allowed or value in self.allowed[name])
        if rule.type == "boolean":
            return kind is bool
        if kind is not int and not (kind is float and rule.type == "float"):
            return False
        if kind is float and not math.isfinite(value):
            return False
        return (rule.min is None or value >= rule.min) and (rule.max is None or value <= rule.max)


def _quick(rule: ColumnRule) -> bool:
    if rule.unique or rule.type not in ("integer", "float", "string", "boolean"):
        return False
    return rule.categories is None or rule.type == "string"


@dataclass
class ServedModel:
    """One loaded version."""

    record: VersionRecord
    model: Any
    contract: Contract | None

    def __post_init__(self) -> None:
        self.quick = QuickCheck(self.contract)

    @property
    def features(self) -> list[str] | None:
        return self.record.info.get("features")

    @cached_property
    def known(self) -> set[str] | None:
        """The columns a request may bring, as the version's contract says: the model's
        features and the other columns the contract describes (a time or an id its training
        data had); None for a version without a contract, which says nothing of the rest."""
        saved = (self.record.info.get("contract") or {}).get("columns")
        if not saved:
            return None
        found = set(saved) | set(self.features or ())
        names = getattr(self.model, "feature_names_in_", None)
        if names is not None:
            found |= {str(name) for name in names}
        return found

    def extra(self, names: list[str]) -> list[str]:
        """The columns among these that the version does not know (see ``known``)."""
        known = self.known
        return [] if known is None else [name for name in names if name not in known]

    @property
    def classifies(self) -> bool:
        """Whether it answers classes (and so a label beside the score)."""
        return hasattr(self.model, "predict_proba")

    def datatype(self, feature: str) -> str:
        """The Open Inference Protocol datatype of a feature, from the contract."""
        rule = self.contract.columns.get(feature) if self.contract else None
        return V2_DATATYPES.get(rule.type, "BYTES") if rule else "BYTES"

    def model_rows(self, rows: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
        """The rows as the model reads them: its features in its order, every column the
        contract declares float as 64-bit floats.

        Requests name columns in any order, and a float column may arrive as integers (``3``
        in JSON, an INT64 tensor). So the model gets the same numbers in the same memory
        layout whichever dialect sent them, and gives the same scores to the last bit.
        """
        names = getattr(self.model, "feature_names_in_", None)
        if names is not None and set(names) <= set(rows.schema.names):
            rows = rows.select(list(names))
        if self.contract is None:
            return rows
        for index, field in enumerate(rows.schema):
            rule = self.contract.columns.get(field.name)
            numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
            if rule is None or rule.type != "float" or not numeric or field.type == pa.float64():
                continue
            if isinstance(rows, pa.RecordBatch):
                rows = pa.Table.from_batches([rows])
            column = pc.cast(rows.column(index), pa.float64(), safe=False)  # rounds past 2**53
            rows = rows.set_column(index, field.name, column)
        return rows

    def check(self, rows: pa.Table) -> None:
        """Raise PayloadError listing every field-level problem the contract finds; without a
        contract, the features the model reads that the request lacks."""
        if self.contract is None:
            missing = [f for f in self.features or () if f not in rows.column_names]
            if missing:
                raise PayloadError(
                    [
                        problem(f"column {name}", f"missing column {name}", rule="missing_column")
                        for name in missing
                    ]
                )
            return
        if rows.num_rows <= QUICK_ROWS and self.quick.passes(rows.to_pydict()):
            return
        validator = Validator(self.contract)
        for batch in rows.to_batches():
            validator.check(batch)
        report = validator.finish()
        if report.passed:
            return
        raise PayloadError(
            [
                problem(
                    f"column {v.column}" if v.column else "rows",
                    v.message,
                    column=v.column,
                    rule=v.rule,
                    rows=v.rows,
                    examples=[_plain(e) for e in v.examples],
                )
                for v in report.violations
            ]
        )

    def predict(self, rows: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels): the positive class's probability and the predicted class, or for
        a regression model the prediction twice."""
        features = feature_frame(self.model, self.model_rows(rows).to_pandas(), [])
        if hasattr(self.model, "predict_proba"):
            probabilities = np.asarray(self.model.predict_proba(features))
            classes = getattr(self.model, "classes_", None)
            if classes is None:
                classes = np.arange(probabilities.shape[1])
            labels = np.asarray(classes)[probabilities.argmax(axis=1)]
            return probabilities[:, -1].astype(np.float64), labels
        predictions = np.asarray(self.model.predict(features), dtype=np.float64)
        return predictions, predictions


def load_served(ref: str, workspace: Workspace) -> ServedModel:
    """Load a version and the part of its contract that describes the model's inputs."""
    record = get_version(ref, workspace=workspace)
    return ServedModel(record, load(record.ref, workspace=workspace), _request_contract(record))


def _request_contract(record: VersionRecord) -> Contract | None:
    saved = record.info.get("contract")
    if not saved:
        return None
    features = record.info.get("features")
    columns = saved.get("columns", {})
    if features:
        columns = {name: rule for name, rule in columns.items() if name in features}
    return load_contract({"columns": columns, "extra_columns": "allow"})


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
