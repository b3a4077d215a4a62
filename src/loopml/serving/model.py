"""A registered version made ready to serve: the model, the contract its requests must meet,
and one predict call that returns scores and labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.data.contract import Contract, load_contract
from loopml.evaluation.scoring import feature_frame
from loopml.registry.api import get_version, load
from loopml.serving.payloads import PayloadError, problem
from loopml.store.registry import VersionRecord
from loopml.workspace import Workspace

V2_DATATYPES = {"float": "FP64", "integer": "INT64", "boolean": "BOOL"}


@dataclass
class ServedModel:
    """One loaded version."""

    record: VersionRecord
    model: Any
    contract: Contract | None

    @property
    def features(self) -> list[str] | None:
        return self.record.info.get("features")

    def datatype(self, feature: str) -> str:
        """The Open Inference Protocol datatype of a feature, from the contract."""
        rule = self.contract.columns.get(feature) if self.contract else None
        return V2_DATATYPES.get(rule.type, "BYTES") if rule else "BYTES"

    def check(self, frame: pd.DataFrame) -> None:
        """Raise PayloadError listing every field-level problem the contract finds; without a
        contract, the features the model reads that the request lacks."""
        if self.contract is None:
            missing = [f for f in self.features or () if f not in frame.columns]
            if missing:
                raise PayloadError(
                    [
                        problem(f"column {name}", f"missing column {name}", rule="missing_column")
                        for name in missing
                    ]
                )
            return
        from loopml.data.api import validate

        report = validate(frame, self.contract).report
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

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels): the positive class's probability and the predicted class, or for
        a regression model the prediction twice."""
        features = feature_frame(self.model, frame, [])
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
