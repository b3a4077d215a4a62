"""The three request dialects, read into an Arrow table, and their answers.

- loopml: ``POST /predict`` with ``{"records": [{...}, ...]}``, a list of records, or one.
- MLflow scoring protocol: ``POST /invocations`` with ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs``; answered ``{"predictions": [...]}``.
- Open Inference Protocol V2: ``POST /v2/models/{name}/infer`` with JSON tensors, one per
  input column; answered with output tensors.

A payload that cannot be read raises PayloadError with a list of problems, each naming where
in the body it is; the server answers 422 with that list. Every reader ends in one table whose
values are single JSON values (null, boolean, number, string) and whose columns each hold one
kind of value, so the contract check and the model never meet a value they cannot convert;
V2 data is checked against its tensor's shape and datatype first.

``openapi_body`` describes each dialect's body for the OpenAPI spec, which FastAPI cannot do
for handlers that read the request themselves.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# The JSON kind of value each V2 datatype's data holds (BF16 travels only as binary data).
V2_TYPES = {
    "BOOL": "boolean",
    **{f"INT{bits}": "integer" for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": "integer" for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": "number" for bits in (16, 32, 64)},
    "BYTES": "string",
}
V2_OUTPUTS = ("score", "label")
SCALAR = "a single value (null, a boolean, a number or a string)"
INT64 = (-(2**63), 2**63 - 1)
MAX_LISTED = 10


class PayloadError(ValueError):
    """A request body that cannot be read; ``problems`` says where and why, ``status`` the
    HTTP status to answer with (422, or 415 for a body that is not JSON)."""

    def __init__(self, problems: list[dict[str, Any]], status: int = 422) -> None:
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems
        self.status = status


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def unencodable(body: Any, where: str = "body") -> str | None:
    """Where the parsed body holds a string that is not valid Unicode (a lone surrogate,
    which JSON's \\ud800 escapes can make), or None: such text cannot be logged or stored."""
    if isinstance(body, str):
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    if isinstance(body, dict):
        inside = [(f"{where}.{key}", part) for key, value in body.items() for part in (key, value)]
    elif isinstance(body, list):
        inside = [(f"{where}[{index}]", value) for index, value in enumerate(body)]
    else:
        return None
    return next((found for place, part in inside if (found := unencodable(part, place))), None)


def problem(location: str, message: str, **extra: Any) -> dict[str, Any]:
    """One machine-readable problem."""
    return {"location": location, "message": message, **extra}


def records_frame(body: Any) -> pa.Table:
    """loopml's /predict body: {"records": [...]}, a list of records, or one record."""
    if isinstance(body, dict) and "records" in body:
        body = body["records"]
    elif isinstance(body, dict):
        body = [body]
    return _records(body, "records")


def _records(rows: Any, where: str) -> pa.Table:
    if not isinstance(rows, list) or not rows:
        raise PayloadError([problem(where, "expected a non-empty list of records (objects)")])
    bad = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if bad:
        raise PayloadError(
            [
                problem(f"{where}[{i}]", "expected an object of column: value")
                for i in bad[:MAX_LISTED]
            ]
        )
    fast = _struct_table(rows)
    if fast is not None:
        return fast
    names = list(dict.fromkeys(name for row in rows for name in row))
    if not names:
        raise PayloadError([problem(where, "the records name no columns")])
    return _frame({name: [row.get(name) for row in rows] for name in names})


def _struct_table(rows: list[dict[str, Any]]) -> pa.Table | None:
    """The table of records that are all plain, read by Arrow in one call (the columns in
    the order the records first name them); None for anything else, which ``_frame`` reads
    column by column to say what is wrong."""
    try:
        array = pa.array(rows)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if not pa.types.is_struct(array.type) or array.type.num_fields == 0:
        return None
    table = pa.Table.from_struct_array(array)
    for name in table.column_names:
        if not _plain(table.column(name), lambda name=name: [row.get(name) for row in rows]):
            return None
    return table


def mlflow_frame(body: Any) -> pa.Table:
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


def _split(value: Any) -> pa.Table:
    if not isinstance(value, dict) or "columns" not in value or "data" not in value:
        raise PayloadError(
            [problem("dataframe_split", 'expected {"columns": [...], "data": [[...], ...]}')]
        )
    columns, data = value["columns"], value["data"]
    _check_names(columns, "dataframe_split.columns")
    if not isinstance(data, list) or not data:
        raise PayloadError([problem("dataframe_split.data", "expected a non-empty list of rows")])
    short = [
        i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns)
    ]
    if short:
        raise PayloadError(
            [
                problem(f"dataframe_split.data[{i}]", f"expected a row of {len(columns)} values")
                for i in short[:MAX_LISTED]
            ]
        )
    return _frame({name: [row[i] for row in data] for i, name in enumerate(columns)})


def _check_names(columns: Any, where: str) -> None:
    """Column names: a non-empty list of distinct strings."""
    if not isinstance(columns, list) or not columns:
        raise PayloadError([problem(where, "expected a non-empty list of column names")])
    bad = [i for i, name in enumerate(columns) if not isinstance(name, str)]
    if bad:
        raise PayloadError(
            [problem(f"{where}[{i}]", "a column name is a string") for i in bad[:MAX_LISTED]]
        )
    twice = sorted(name for name, count in Counter(columns).items() if count > 1)
    if twice:
        raise PayloadError([problem(where, f"columns named twice: {twice}", columns=twice)])


def _instances(value: Any, key: str) -> pa.Table:
    if isinstance(value, dict):  # column name -> list of values
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise PayloadError([problem(key, "expected columns of lists of equal length")])
        if 0 in lengths:
            raise PayloadError([problem(key, "expected at least one row")])
        return _frame(value)
    return _records(value, key)


def _frame(columns: dict[str, list[Any]]) -> pa.Table:
    """The table of COLUMNS (name -> values, all of one length, at least one), once every
    value is a single JSON value and every column holds one kind of value (nulls aside): what
    the contract check and the model can read. Problems are named by column.

    Arrow converts a column of plain values in one call; only a column it refuses, or makes
    nested or non-finite, is read value by value, to say what is wrong with it.
    """
    arrays = {}
    for name, values in columns.items():
        array = _plain_array(values)
        if array is None:
            return _checked(columns)
        arrays[name] = array
    return pa.table(arrays)


def _plain_array(values: list[Any]) -> pa.Array | None:
    """The Arrow array of VALUES when they are plain, one kind, finite; else None."""
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    return array if _plain(array, lambda: values) else None


def _plain(array: pa.Array | pa.ChunkedArray, values: Callable[[], list[Any]]) -> bool:
    """Whether Arrow read a column as plain values of one kind, finite; ``values`` gives the
    column's JSON values, looked at only for a float column."""
    kind = array.type
    if pa.types.is_boolean(kind) or pa.types.is_string(kind) or pa.types.is_null(kind):
        return True
    if pa.types.is_integer(kind):  # Arrow refuses booleans among integers
        return True
    if pa.types.is_floating(kind):
        found = values()
        # ... but not after a float: [1.5, true] would become [1.5, 1.0]
        return _finite(array, found) and not any(v is True or v is False for v in found)
    return False


def _finite(array: pa.Array, values: list[Any]) -> bool:
    if len(values) <= 64:  # a compute kernel costs more than a look at a few values
        return all(v is None or math.isfinite(v) for v in values)
    return pc.all(pc.is_finite(array)).as_py() is not False


def _checked(columns: dict[str, list[Any]]) -> pa.Table:
    problems, cleaned = [], {}
    for name, values in columns.items():
        cleaned[name] = _column(name, values, problems)
    if problems:
        raise PayloadError(problems)
    return pa.table({name: pa.array(values) for name, values in cleaned.items()})


def _column(name: str, values: list[Any], problems: list[dict[str, Any]]) -> list[Any]:
    nested, too_big, kinds = [], [], {}
    cleaned = []
    for row, value in enumerate(values):
        kind, value = _scalar(value)
        if kind == "nested":
            nested.append(row)
        elif kind == "too big":
            too_big.append(row)
        elif kind is not None:
            kinds.setdefault(kind, []).append(row)
        cleaned.append(value)
    where = f"column {name}"
    if nested:
        message = f"{name}: expected {SCALAR}; found a list or an object"
        problems.append(problem(where, message, column=name, rows=nested[:MAX_LISTED]))
    if too_big:
        message = f"{name}: numbers beyond the range of a 64-bit float"
        problems.append(problem(where, message, column=name, rows=too_big[:MAX_LISTED]))
    if len(kinds) > 1:
        found = " and ".join(f"{kind}s" for kind in kinds)
        rows = sorted(row for rows in kinds.values() for row in rows[:MAX_LISTED])
        message = f"{name}: mixes {found}; a column holds one kind of value"
        problems.append(problem(where, message, column=name, rows=rows[:MAX_LISTED]))
    if any(isinstance(value, float) for value in cleaned):  # integers among floats are floats
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in cleaned]
    return cleaned


def _scalar(value: Any) -> tuple[str | None, Any]:
    """(kind, value): None for a null, "nested" or "too big" for a value no column can hold;
    an integer beyond 64 bits becomes a float."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return "number", value
        try:
            return "number", float(value)
        except OverflowError:
            return "too big", None
    if isinstance(value, float):
        return ("too big", None) if math.isinf(value) else ("number", value)
    if isinstance(value, str):
        return "string", value
    return "nested", None


def mlflow_answer(predictions: list[Any]) -> dict[str, Any]:
    """MLflow's answer shape."""
    return {"predictions": predictions}


def v2_frame(body: Any) -> pa.Table:
    """An Open Inference Protocol V2 request: one input tensor per column, each of shape
    [rows] or [rows, 1], its data (flat or nested) of its datatype."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise PayloadError([problem("inputs", "expected a non-empty list of input tensors")])
    columns: dict[str, list[Any]] = {}
    first: dict[str, int] = {}
    problems = []
    for index, tensor in enumerate(body["inputs"]):
        where = f"inputs[{index}]"
        try:
            name, values = _tensor(tensor)
        except _TensorError as error:
            problems.append(problem(where, str(error)))
            continue
        if name in first:
            problems.append(problem(where, f"input {name!r} is also inputs[{first[name]}]"))
            continue
        first[name], columns[name] = index, values
    problems.extend(_requested_outputs(body.get("outputs")))
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        problems.append(problem("inputs", "every input tensor must have the same number of rows"))
    if problems:
        raise PayloadError(problems)
    return _frame(columns)


def _tensor(tensor: Any) -> tuple[str, list[Any]]:
    """(name, values) of one input tensor; a _TensorError says what is wrong with it."""
    fields = ("name", "shape", "datatype", "data")
    if not isinstance(tensor, dict) or not set(fields) <= set(tensor):
        raise _TensorError("expected an object with name, shape, datatype and data")
    name, shape, datatype, data = (tensor[field] for field in fields)
    if not isinstance(name, str) or not name:
        raise _TensorError("name: expected a non-empty string")
    if datatype not in V2_TYPES:
        raise _TensorError(f"datatype: expected one of {', '.join(V2_TYPES)}; found {datatype!r}")
    if not _is_shape(shape):
        raise _TensorError(
            f"shape: expected [rows] or [rows, 1] (one column per tensor); found {shape}"
        )
    values = _flat(data)
    if values is None:
        raise _TensorError("data: expected a list of values, flat or nested")
    if len(values) != shape[0]:
        raise _TensorError(f"shape {shape} does not match {len(values)} values")
    if not values:
        raise _TensorError("no rows: the shape's first dimension is 0")
    kind = V2_TYPES[datatype]
    read = [_typed(value, kind, datatype) for value in values]
    bad = [i for i, value in enumerate(read) if value is _BAD]
    if bad:
        examples = ", ".join(json.dumps(values[i]) for i in bad[:3])
        raise _TensorError(
            f"data: {datatype} holds {_KINDS[kind]}; {len(bad)} of {len(values)} values "
            f"are not, such as {examples} (at {bad[:MAX_LISTED]})"
        )
    return name, read


class _TensorError(ValueError):
    """What is wrong with one input tensor."""


_KINDS = {
    "boolean": "booleans",
    "integer": "integers in its range",
    "number": "finite numbers",
    "string": "strings",
}
_BAD = object()


def _is_shape(shape: Any) -> bool:
    if not isinstance(shape, list) or len(shape) not in (1, 2):
        return False
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        return False
    return len(shape) == 1 or shape[1] == 1


def _flat(data: Any) -> list[Any] | None:
    """The values of tensor data nested in lists, in row-major order; a bare value for a
    tensor of one. None for data that is an object."""
    if isinstance(data, dict):
        return None
    if not isinstance(data, list):
        return [data]
    values: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            values.append(item)
        else:
            stack.pop()
    return values


def _typed(value: Any, kind: str, datatype: str) -> Any:
    """VALUE as DATATYPE holds it, or _BAD."""
    if kind == "boolean":
        return value if isinstance(value, bool) else _BAD
    if kind == "string":
        return value if isinstance(value, str) else _BAD
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _BAD
    if kind == "integer":
        if not isinstance(value, int):
            return _BAD
        bits = int(datatype.removeprefix("U").removeprefix("INT"))
        signed = not datatype.startswith("U")
        low, high = -(2 ** (bits - 1)) * signed, 2 ** (bits - signed) - 1
        return value if low <= value <= high else _BAD
    try:
        number = float(value)
    except OverflowError:
        return _BAD
    return _BAD if math.isinf(number) else number


def _requested_outputs(outputs: Any) -> list[dict[str, Any]]:
    """Problems with the outputs a V2 request asks for (all of them when it names none)."""
    if outputs is None:
        return []
    if not isinstance(outputs, list):
        return [problem("outputs", "expected a list of requested outputs")]
    problems = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in V2_OUTPUTS:
            message = f"expected an output named one of {', '.join(V2_OUTPUTS)}"
            problems.append(problem(f"outputs[{index}]", message))
    return problems


def openapi_body(dialect: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of DIALECT ("predict", "mlflow", "v2" or "feedback"), for
    a route's ``openapi_extra``: the handlers read the body themselves, so FastAPI cannot
    describe it."""
    content = {"application/json": {"schema": _BODY_SCHEMAS[dialect]}}
    return {"requestBody": {"required": True, "content": content}}


_PROBLEMS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "the request's id in the prediction log"},
        "error": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["location", "message"],
                "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_WHY = {
    404: "no such model: this server serves one endpoint",
    408: "the body did not arrive within serve_read_timeout",
    413: "the body, its rows or its labels are beyond the server's limits",
    415: "the body is not sent as JSON",
    422: "the body cannot be read, or breaks the model's contract: each problem listed",
    500: "the model failed on valid input: the request's id, to look up in the log",
    503: "not ready: the champion failed each of its latest requests",
}


def openapi_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for its ``responses``: each with its JSON shape."""
    return {
        code: {
            "description": _WHY[code],
            "content": {"application/json": {"schema": _PROBLEMS_SCHEMA}},
        }
        for code in codes
    }


_SCALAR_SCHEMA = {"type": ["string", "number", "boolean", "null"]}
_RECORD_SCHEMA = {"type": "object", "minProperties": 1, "additionalProperties": _SCALAR_SCHEMA}
_RECORDS_SCHEMA = {"type": "array", "minItems": 1, "items": _RECORD_SCHEMA}
_COLUMNS_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "array", "minItems": 1, "items": _SCALAR_SCHEMA},
}


def _one_key(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    properties = {key: schema, "params": {"type": "object"}}
    return {
        "type": "object",
        "required": [key],
        "properties": properties,
        "additionalProperties": False,
    }


_LABEL_SCHEMA = {
    "type": "object",
    "required": ["id", "label"],
    "properties": {"id": {"type": "string"}, "label": _SCALAR_SCHEMA},
}
_BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "feedback": {
        "anyOf": [
            _LABEL_SCHEMA,
            {"type": "array", "minItems": 1, "items": _LABEL_SCHEMA},
            {
                "type": "object",
                "required": ["feedback"],
                "properties": {
                    "feedback": {"type": "array", "minItems": 1, "items": _LABEL_SCHEMA}
                },
            },
        ]
    },
    "predict": {
        "anyOf": [
            {"type": "object", "required": ["records"], "properties": {"records": _RECORDS_SCHEMA}},
            _RECORDS_SCHEMA,
            _RECORD_SCHEMA,
        ]
    },
    "mlflow": {
        "oneOf": [
            _one_key(
                "dataframe_split",
                {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {
                            "type": "array",
                            "minItems": 1,
                            "uniqueItems": True,
                            "items": {"type": "string"},
                        },
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "array", "items": _SCALAR_SCHEMA},
                        },
                        "index": {"type": "array"},
                    },
                },
            ),
            _one_key("dataframe_records", _RECORDS_SCHEMA),
            _one_key("instances", {"anyOf": [_RECORDS_SCHEMA, _COLUMNS_SCHEMA]}),
            _one_key("inputs", {"anyOf": [_RECORDS_SCHEMA, _COLUMNS_SCHEMA]}),
        ]
    },
    "v2": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "shape": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 2,
                            "items": {"type": "integer", "minimum": 0},
                        },
                        "datatype": {"type": "string", "enum": list(V2_TYPES)},
                        "parameters": {"type": "object"},
                        "data": {
                            "type": "array",
                            "items": {"type": ["number", "string", "boolean", "array"]},
                        },
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": list(V2_OUTPUTS)},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    },
}


def v2_answer(
    model: str, version: int, request_id: str, scores: np.ndarray, labels: list | None
) -> dict:
    """The V2 response: the score and (for a classifier) the label as output tensors."""
    outputs = [
        {"name": "score", "shape": [len(scores)], "datatype": "FP64", "data": scores.tolist()}
    ]
    if labels is not None:
        outputs.append(
            {
                "name": "label",
                "shape": [len(labels)],
                "datatype": "BYTES",
                "data": [str(v) for v in labels],
            }
        )
    return {
        "model_name": model,
        "model_version": str(version),
        "id": request_id,
        "outputs": outputs,
    }
