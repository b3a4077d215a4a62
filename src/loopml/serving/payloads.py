"""The three request dialects, read into a DataFrame, and their answers.

- loopml: ``POST /predict`` with ``{"records": [{...}, ...]}``, a list of records, or one.
- MLflow scoring protocol: ``POST /invocations`` with ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``; answered ``{"predictions": [...]}``.
- Open Inference Protocol V2: ``POST /v2/models/{name}/infer`` with JSON tensors, one per
  input column; answered with output tensors.

A payload that cannot be read raises PayloadError with a list of problems, each naming where
in the body it is; the server answers 422 with that list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
V2_TYPES = {"BOOL": "bool", "FP16": "float", "FP32": "float", "FP64": "float", "BYTES": "str"}


class PayloadError(ValueError):
    """A request body that cannot be read; ``problems`` says where and why."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems


def problem(location: str, message: str, **extra: Any) -> dict[str, Any]:
    """One machine-readable problem."""
    return {"location": location, "message": message, **extra}


def records_frame(body: Any) -> pd.DataFrame:
    """loopml's /predict body: {"records": [...]}, a list of records, or one record."""
    if isinstance(body, dict) and "records" in body:
        body = body["records"]
    elif isinstance(body, dict):
        body = [body]
    return _records(body, "records")


def _records(rows: Any, where: str) -> pd.DataFrame:
    if not isinstance(rows, list) or not rows:
        raise PayloadError([problem(where, "expected a non-empty list of records (objects)")])
    bad = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if bad:
        raise PayloadError(
            [problem(f"{where}[{i}]", "expected an object of column: value") for i in bad[:10]]
        )
    return pd.DataFrame.from_records(rows)


def mlflow_frame(body: Any) -> pd.DataFrame:
    """MLflow's /invocations body, in any of its four forms."""
    if not isinstance(body, dict):
        raise PayloadError([problem("body", f"expected an object with one of {MLFLOW_KEYS}")])
    present = [key for key in MLFLOW_KEYS if key in body]
    if len(present) != 1:
        found = ", ".join(present) or "none"
        raise PayloadError(
            [problem("body", f"expected exactly one of {', '.join(MLFLOW_KEYS)}; found {found}")]
        )
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "dataframe_records":
        return _records(value, key)
    return _instances(value, key)


def _split(value: Any) -> pd.DataFrame:
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise PayloadError(
            [problem("dataframe_split", 'expected {"columns": [...], "data": [[...], ...]}')]
        )
    columns, data = value["columns"], value["data"]
    if not isinstance(data, list) or not data:
        raise PayloadError([problem("dataframe_split.data", "expected a non-empty list of rows")])
    short = [
        i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns)
    ]
    if short:
        raise PayloadError(
            [
                problem(f"dataframe_split.data[{i}]", f"expected a row of {len(columns)} values")
                for i in short[:10]
            ]
        )
    return pd.DataFrame(data, columns=columns)


def _instances(value: Any, key: str) -> pd.DataFrame:
    if isinstance(value, dict):  # column name -> list of values
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise PayloadError([problem(key, "expected columns of lists of equal length")])
        return pd.DataFrame(value)
    return _records(value, key)


def mlflow_answer(predictions: list[Any]) -> dict[str, Any]:
    """MLflow's answer shape."""
    return {"predictions": predictions}


def v2_frame(body: Any) -> pd.DataFrame:
    """An Open Inference Protocol V2 request: one input tensor per column."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise PayloadError([problem("inputs", "expected a non-empty list of input tensors")])
    columns: dict[str, list[Any]] = {}
    problems = []
    for index, tensor in enumerate(body["inputs"]):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= set(tensor):
            problems.append(problem(where, "expected name, shape, datatype and data"))
            continue
        data = np.asarray(tensor["data"], dtype=object).reshape(-1)
        rows = tensor["shape"][0] if tensor["shape"] else 0
        if len(data) != rows:
            problems.append(
                problem(where, f"shape {tensor['shape']} does not match {len(data)} values")
            )
            continue
        columns[str(tensor["name"])] = data.tolist()
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        problems.append(problem("inputs", "every input tensor must have the same number of rows"))
    if problems:
        raise PayloadError(problems)
    return pd.DataFrame(columns)


def v2_answer(model: str, version: int, request_id: str, scores: np.ndarray, labels: list) -> dict:
    """The V2 response: the score and the label as two output tensors."""
    return {
        "model_name": model,
        "model_version": str(version),
        "id": request_id,
        "outputs": [
            {"name": "score", "shape": [len(scores)], "datatype": "FP64", "data": scores.tolist()},
            {
                "name": "label",
                "shape": [len(labels)],
                "datatype": "BYTES",
                "data": [str(v) for v in labels],
            },
        ],
    }
