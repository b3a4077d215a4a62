"""Search spaces for sweeps, written in YAML:

    max_depth: {type: int, low: 2, high: 12}
    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
    model: {type: categorical, choices: [gbm, forest]}
    l2: [0.0, 0.1, 1.0]          # a list is shorthand for a categorical

Every dimension must be a parameter of the pipeline. Errors say which line is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from loopml.errors import SearchSpaceError
from loopml.pipeline.graph import Pipeline, suggest
from loopml.pipeline.types import conforms, describe
from loopml.yamltext import line_of, located_problems, read_yaml

Scalar = bool | int | float | str | None


class IntRange(BaseModel):
    """Whole numbers from low to high inclusive, every step-th, on a log scale if asked."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> IntRange:
        _check_range(self.low, self.high, self.log, self.step != 1)
        return self

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)


class FloatRange(BaseModel):
    """Real numbers from low to high, on a log scale if asked, or on a grid of step."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> FloatRange:
        _check_range(self.low, self.high, self.log, self.step is not None)
        return self

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)


class Choice(BaseModel):
    """One of a list of values."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError("choices must be distinct")
        return self

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)


Dimension = Annotated[IntRange | FloatRange | Choice, Field(discriminator="type")]


class SearchSpace(RootModel[dict[str, Dimension]]):
    """Parameter name → the values a sweep may try."""

    def distributions(self) -> dict[str, Any]:
        """The Optuna distributions of every dimension."""
        return {name: dimension.distribution() for name, dimension in self.root.items()}


def _check_range(low: float, high: float, log: bool, stepped: bool) -> None:
    if low >= high:
        raise ValueError(f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log scale needs low above 0, not {low}")
    if log and stepped:
        raise ValueError("a log scale cannot have a step")


def load_space(source: str | Path | dict[str, Any], pipeline: Pipeline) -> SearchSpace:
    """A search space from a YAML file, YAML text or a dict, checked against the pipeline."""
    data, text, where = read_yaml(source, "the search space", SearchSpaceError)
    if not isinstance(data, dict) or not data:
        raise SearchSpaceError(
            f"{where} must map parameter names to ranges, like "
            "'max_depth: {type: int, low: 2, high: 12}'."
        )
    space = _validated(_shorthand(data), text, where)
    _check_names(space, pipeline, text, where)
    return space


def _shorthand(data: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"type": "categorical", "choices": value} if isinstance(value, list) else value
        for name, value in data.items()
    }


def _validated(data: dict[str, Any], text: str | None, where: str) -> SearchSpace:
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as error:
        problems = located_problems(error.errors(), text, skip=("int", "float", "categorical"))
        raise SearchSpaceError(f"{where} is invalid: {problems}.") from None


def _check_names(space: SearchSpace, pipeline: Pipeline, text: str | None, where: str) -> None:
    for name, dimension in space.root.items():
        if name in pipeline.params:
            _check_type(name, dimension, pipeline, text, where)
        else:
            known = ", ".join(sorted(pipeline.params)) or "none"
            raise SearchSpaceError(
                f"{where}{line_of(text, (name,))} names {name!r}, which pipeline "
                f"{pipeline.name!r} does not take.{suggest(name, pipeline.params)} Its "
                f"parameters: {known}."
            )


def _check_type(
    name: str, dimension: Any, pipeline: Pipeline, text: str | None, where: str
) -> None:
    param = pipeline.params[name]
    samples = dimension.choices if isinstance(dimension, Choice) else [dimension.low]
    for value in samples:
        if not conforms(value, param.hint):
            readers = ", ".join(f"step {reader!r}" for reader in param.readers)
            raise SearchSpaceError(
                f"{where}{line_of(text, (name,))} gives {name!r} the value {value!r}, but "
                f"{readers} declares {name}: {describe(param.hint)}."
            )
