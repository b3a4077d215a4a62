"""Contracts: the schema and constraints data must satisfy, written in YAML.

    version: 1
    columns:
      carrier:   {type: string, nullable: false, categories: [AA, B6, DL]}
      dep_delay: {type: float, min: -60, max: 1500}
      time_hour: {type: timestamp, role: time}
      arr_delay: {type: float, available_at: after_prediction}
    unique: [[year, month, day, carrier, flight]]
    rows: {min: 1000}
    extra_columns: forbid

The same contract checks training inputs, serving requests and batch-scoring inputs: this
module is its one definition. docs/contracts.md is the reference and
docs/contract.schema.json its JSON Schema.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopml.data.profile import (
    CategoricalSummary,
    DatetimeSummary,
    NumericSummary,
    Profile,
)
from loopml.errors import ContractError, InvalidValueError
from loopml.yamltext import SafeLoader, line_of, yaml_error_line

# YAML reads these as line breaks, so a plain or single-quoted string holding one does not
# survive a round trip; double quotes escape them.
YAML_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


class _Dumper(yaml.SafeDumper):
    """Safe YAML output whose strings read back exactly as written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if any(mark in text for mark in YAML_LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)

ColumnType = Literal["integer", "float", "string", "boolean", "timestamp", "date"]
Bound = float | int | datetime | date | str
MAX_INFERRED_CATEGORIES = 50


class ColumnRule(BaseModel):
    """What one column must hold."""

    model_config = ConfigDict(extra="forbid")

    type: ColumnType = Field(description="The column's type.")
    nullable: bool = Field(True, description="Whether missing values are allowed.")
    min: Bound | None = Field(None, description="Smallest allowed value (numbers and times).")
    max: Bound | None = Field(None, description="Largest allowed value (numbers and times).")
    categories: list[str | int | bool] | None = Field(
        None, description="The only values allowed (strings, integers or booleans)."
    )
    unique: bool = Field(False, description="Whether every non-null value must differ.")
    role: Literal["feature", "target", "identifier", "time"] | None = Field(
        None, description="What the column is for; audits and training read it."
    )
    available_at: Literal["prediction", "after_prediction"] = Field(
        "prediction",
        description="'after_prediction' marks a column only known after the moment of "
        "prediction: using it as a feature leaks the future.",
    )
    description: str | None = Field(None, description="Free text for people.")

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> ColumnRule:
        for name in ("min", "max"):
            bound = getattr(self, name)
            if bound is None:
                continue
            if self.type in ("integer", "float") and not _is_number(bound):
                raise ValueError(f"{name} of a {self.type} column must be a number, not {bound!r}")
            if self.type in ("timestamp", "date"):
                object.__setattr__(self, name, _as_time(bound, name, self.type))
            if self.type in ("string", "boolean"):
                raise ValueError(f"a {self.type} column cannot have {name}; use categories")
        if self.min is not None and self.max is not None and _order(self.min) > _order(self.max):
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class RowRule(BaseModel):
    """Bounds on the number of rows."""

    model_config = ConfigDict(extra="forbid")

    min: int | None = Field(None, ge=0, description="Fewest rows allowed.")
    max: int | None = Field(None, ge=0, description="Most rows allowed.")


class Contract(BaseModel):
    """The schema and constraints of a dataset; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = Field(1, description="Version of the contract format.")
    dataset: str | None = Field(None, description="The dataset this contract was written for.")
    columns: dict[str, ColumnRule] = Field(description="Rules per column, by name.")
    unique: list[list[str]] = Field(
        default_factory=list,
        description="Sets of columns whose combined values must not repeat (keys).",
    )
    rows: RowRule | None = Field(None, description="Bounds on the number of rows.")
    extra_columns: Literal["allow", "forbid"] = Field(
        "forbid", description="Whether columns the contract does not list are allowed."
    )

    @field_validator("columns")
    @classmethod
    def _some_columns(cls, columns: dict[str, ColumnRule]) -> dict[str, ColumnRule]:
        if not columns:
            raise ValueError("a contract must list at least one column")
        return columns

    @model_validator(mode="after")
    def _keys_are_columns(self) -> Contract:
        for key in self.unique:
            unknown = [name for name in key if name not in self.columns]
            if unknown or not key:
                raise ValueError(f"unique key {key} names columns the contract lacks: {unknown}")
        return self

    def columns_with(self, **properties: Any) -> list[str]:
        """Names of the columns whose rules have all the given properties."""
        return [
            name
            for name, rule in self.columns.items()
            if all(getattr(rule, key) == value for key, value in properties.items())
        ]

    def to_yaml(self, *, comment: str | None = None) -> str:
        """The contract as YAML, with only the properties that differ from the defaults;
        a comment goes first, as '# ' lines."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data = {"version": 1, **data}
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        if comment is None:
            return text
        lines = [part for line in comment.splitlines() for part in textwrap.wrap(line, 98)]
        return "".join(f"# {line}\n" for line in lines) + text

    def save(self, path: str | Path, *, comment: str | None = None) -> Path:
        """Write the contract as YAML."""
        path = Path(path)
        path.write_text(self.to_yaml(comment=comment), encoding="utf-8")
        return path


def load_contract(source: str | Path | dict[str, Any] | Contract) -> Contract:
    """A contract from a YAML file, YAML text, a dict or a Contract; errors say where."""
    if isinstance(source, Contract):
        return source
    if isinstance(source, dict):
        return _validated(source, None, "the contract")
    text, where = _contract_text(source)
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as error:
        line = yaml_error_line(error)
        raise ContractError(
            f"{where}{line} is not valid YAML: {getattr(error, 'problem', error)}."
        ) from None
    if not isinstance(data, dict):
        raise ContractError(f"{where} must be a YAML mapping with a 'columns' key.")
    return _validated(data, text, where)


def _contract_text(source: str | Path) -> tuple[str, str]:
    if isinstance(source, Path) or "\n" not in str(source):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise ContractError(
                f"No contract file at {path}. Write one with: loopml data contract infer "
                "DATASET > contract.yaml"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise ContractError(f"Cannot read the contract {path}: {error}.") from None
    return str(source), "the contract"


def _validated(data: dict[str, Any], text: str | None, where: str) -> Contract:
    try:
        return Contract.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            location = line_of(text, item["loc"])
            path = ".".join(str(part) for part in item["loc"]) or "(top level)"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{path}{location}: {message}")
        raise ContractError(
            f"{where} is not a valid contract: " + "; ".join(problems) + "."
        ) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the contract format."""
    schema = Contract.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "loopml contract"
    return schema


@dataclass(frozen=True)
class InferredBounds:
    """How inference bounds numbers: at the observed min and max, or at the `quantile` and
    1 - `quantile` quantiles; then `widen` times that range further out on each side.
    Integer bounds are rounded outward. Time bounds are the observed min and max."""

    widen: float = 0.0
    quantile: float | None = None

    @classmethod
    def of(cls, widen: float | str = 0.0, quantiles: float | str | None = None) -> InferredBounds:
        """Checked bounds settings; each is a fraction (0.1) or a percentage ('10%')."""
        return cls(_widening(widen), None if quantiles is None else _tail(quantiles))

    def numbers(self, summary: NumericSummary, integral: bool) -> dict[str, int | float]:
        """The min and max of a numeric column; an infinite one is left out (no bound)."""
        low, high = summary.min, summary.max
        if self.quantile is not None:
            low, high = summary.quantiles((self.quantile, 1 - self.quantile)).values()
        if self.widen:
            margin = self.widen * (high - low)
            low, high = low - margin, high + margin
        bounds = {"min": low, "max": high}
        return {
            key: _outward(value, key, integral)
            for key, value in bounds.items()
            if math.isfinite(value)
        }

    def describe(self) -> str:
        """One sentence for people: how the bounds were made."""
        if self.quantile is None and not self.widen:
            return "Bounds are the observed min and max, with no margin."
        numbers = "the observed min and max"
        if self.quantile is not None:
            numbers = (
                f"the {_percent(self.quantile)} and {_percent(1 - self.quantile)} quantiles "
                "(the most extreme values seen may lie outside them)"
            )
        if self.widen:
            numbers += f", widened by {_percent(self.widen)} of their range on each side"
        return f"Numeric bounds are {numbers}; time bounds are the observed min and max."


def _widening(value: float | str) -> float:
    """A share of the range, 0 or more; a bare number above 1 is taken for a typo of '%'."""
    share, percent = _fraction(value, "widen", "0.1")
    if share < 0:
        raise InvalidValueError(f"widen must be 0 or more (0.1 or 10%), not {value!r}.")
    if share > 1 and not percent:
        raise InvalidValueError(
            f"widen {value!r} is more than 1, the whole range: write {_percent(share / 100)} "
            f"for that percentage, or {_percent(share)} if that is meant."
        )
    return share


def _tail(value: float | str) -> float:
    """The share of the data left below the lower and above the upper quantile bound."""
    share, _ = _fraction(value, "quantiles", "0.001")
    if not 0 < share < 0.5:
        raise InvalidValueError(
            "quantiles must lie strictly between 0 and 0.5 (0.001 puts the bounds at the "
            f"0.1% and 99.9% quantiles), not {value!r}."
        )
    return share


def _fraction(value: float | str, name: str, example: str) -> tuple[float, bool]:
    """A number written as a fraction (0.1) or a percentage ('10%'), and whether it was a
    percentage."""
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.removesuffix("%")) / (100 if percent else 1)
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidValueError(
            f"{name} takes a fraction such as {example} or a percentage such as "
            f"{_percent(float(example))}, not {value!r}."
        )
    return number, percent


def _percent(share: float) -> str:
    return f"{share * 100:.6g}%"


def _outward(value: float, key: str, integral: bool) -> int | float:
    if not integral:
        return float(value)
    return int(math.floor(value) if key == "min" else math.ceil(value))


def infer_contract(
    profile: Profile,
    *,
    dataset: str | None = None,
    widen: float | str = 0.0,
    quantiles: float | str | None = None,
) -> Contract:
    """A contract inferred from the profiled data: types, nullability, ranges, small
    category sets and unique columns. Edit it to say what must hold.

    Numeric bounds are the observed min and max unless `quantiles` (0.001: the 0.1% and 99.9%
    quantiles) says otherwise; `widen` (0.1 or '10%') moves them out by that share of their
    range on each side, so that new data a little beyond what was seen still fits.
    """
    bounds = InferredBounds.of(widen, quantiles)
    columns = {
        name: _infer_rule(summary, profile.rows_, bounds)
        for name, summary in profile.columns_.items()
    }
    described = {name: rule for name, rule in columns.items() if rule is not None}
    if not described:
        raise ContractError("The data has no column of a type contracts can describe.")
    rows = RowRule(min=1) if profile.rows_ else None
    extra = "forbid" if len(described) == len(columns) else "allow"  # lists, binary, ...
    return Contract(dataset=dataset, columns=described, rows=rows, extra_columns=extra)


def _infer_rule(summary: Any, rows: int, bounds: InferredBounds) -> ColumnRule | None:
    column_type = type_of_arrow(summary.type)
    if column_type == "null":  # no value seen: any type will do, values must stay optional
        return ColumnRule(type="string", nullable=True)
    if column_type is None:
        return None
    rule: dict[str, Any] = {"type": column_type, "nullable": summary.nulls > 0}
    if isinstance(summary, NumericSummary) and summary.count:
        rule.update(bounds.numbers(summary, integral=column_type == "integer"))
    if isinstance(summary, DatetimeSummary) and summary.count:
        rule["min"] = _moment(summary.min_us, column_type)
        rule["max"] = _moment(summary.max_us, column_type)
    if isinstance(summary, CategoricalSummary) and column_type == "string":
        exact = summary.categories.exact and summary.distinct_exact
        if exact and 0 < summary.distinct <= MAX_INFERRED_CATEGORIES and summary.distinct < rows:
            rule["categories"] = sorted(str(value) for value, _ in summary.top(summary.distinct))
    exact_unique = summary.distinct_exact and summary.nulls == 0 and summary.count > 1
    if exact_unique and summary.distinct == summary.count and column_type in ("integer", "string"):
        rule["unique"] = True
    return ColumnRule(**rule)


def _moment(micros: int, column_type: str) -> datetime | date:
    stamp = datetime.fromtimestamp(0, tz=UTC) + timedelta(microseconds=micros)
    return stamp.date() if column_type == "date" else stamp


def type_of_arrow(arrow_type: str) -> str | None:
    """The contract type of an Arrow type name ('null' for a column without any value), or
    None when contracts cannot describe it."""
    text = arrow_type
    if text.startswith("dictionary<values="):
        text = text.removeprefix("dictionary<values=").split(",", 1)[0]
    if text.startswith(("int", "uint")):
        return "integer"
    if text in ("float", "double", "halffloat") or text.startswith("decimal"):
        return "float"
    if text in ("string", "large_string", "utf8", "large_utf8"):
        return "string"
    if text == "bool":
        return "boolean"
    if text.startswith("timestamp"):
        return "timestamp"
    if text.startswith("date"):
        return "date"
    if text == "null":
        return "null"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_time(value: Any, name: str, column_type: str) -> datetime | date:
    """A bound as a datetime (timestamp columns) or a date (date columns)."""
    if not isinstance(value, datetime | date):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(
                f"{name} must be an ISO date or time such as 2013-01-01 or "
                f"2013-01-01T05:00:00Z, not {value!r}"
            ) from None
    if column_type == "date":
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value


def _order(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else value.replace(tzinfo=None).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    return value
