"""Building pipelines: steps from plain functions, edges from names, and every build error
naming the step's file and line."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from loopml.errors import PipelineError
from loopml.pipeline import REQUIRED, Pipeline, StepContext, step

HERE = __file__


def raw(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


def features(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(y=raw.x * 2)


def model(features: pd.DataFrame, alpha: float = 0.5) -> float:
    return float(features.y.mean() * alpha)


def line_of(func) -> str:
    return f"{HERE}:{func.__code__.co_firstlineno}"


def test_edges_come_from_parameter_names_and_order_follows_them() -> None:
    pipeline = Pipeline([model, features, raw])
    assert [s.name for s in pipeline.order] == ["raw", "features", "model"]
    assert [s.name for s in pipeline.upstream(pipeline.step("model"))] == ["features"]
    assert set(pipeline.params) == {"rows", "alpha"}
    assert pipeline.params["alpha"].default == 0.5
    assert pipeline.params["alpha"].hint is float
    assert pipeline.name == "raw"  # the last step given


def test_order_keeps_the_declaration_order_where_edges_allow() -> None:
    def a() -> int:
        return 1

    def b() -> int:
        return 2

    def c(a: int, b: int) -> int:
        return a + b

    assert [s.name for s in Pipeline([b, a, c]).order] == ["b", "a", "c"]
    assert [s.name for s in Pipeline([c, a, b]).order] == ["a", "b", "c"]


def test_a_step_is_still_a_plain_function() -> None:
    decorated = step(retries=2)(model)
    assert decorated(pd.DataFrame({"y": [2.0, 4.0]}), alpha=1.0) == 3.0
    assert decorated.retries == 2
    assert decorated.location.line == model.__code__.co_firstlineno


def test_explicit_wiring_and_several_outputs() -> None:
    @step(outputs=("train", "test"))
    def split(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        return features.iloc[:5], features.iloc[5:]

    baseline = step(model, name="baseline", outputs="baseline_score", inputs={"features": "train"})
    pipeline = Pipeline([raw, features, split, baseline])
    wired = pipeline.step("baseline").parameters[0]
    assert (wired.name, wired.source) == ("features", "train")
    assert pipeline.producers["test"].name == "split"


def test_a_context_parameter_is_not_an_input() -> None:
    def scored(features: pd.DataFrame, context: StepContext) -> float:
        return 1.0

    pipeline = Pipeline([raw, features, scored])
    assert [p.name for p in pipeline.step("scored").parameters] == ["features"]


def test_a_cycle_names_every_step_in_it_with_its_line() -> None:
    def a(c: int) -> int:
        return c

    def b(a: int) -> int:
        return a

    def c(b: int) -> int:
        return b

    with pytest.raises(PipelineError, match="cycle") as caught:
        Pipeline([a, b, c])
    for func in (a, b, c):
        assert line_of(func) in str(caught.value)


def test_a_missing_input_names_the_step_and_suggests_a_name() -> None:
    def train(featurs: pd.DataFrame) -> float:
        return 0.0

    with pytest.raises(PipelineError) as caught:
        Pipeline([raw, features, train])
    message = str(caught.value)
    assert line_of(train) in message
    assert "'featurs'" in message and "Did you mean 'features'?" in message


def test_a_type_mismatch_names_both_steps() -> None:
    def numbers() -> list:
        return [1]

    def total(numbers: pd.DataFrame) -> float:
        return 0.0

    with pytest.raises(PipelineError) as caught:
        Pipeline([numbers, total])
    message = str(caught.value)
    assert line_of(total) in message and line_of(numbers) in message
    assert "DataFrame" in message and "list" in message


def test_compatible_types_pass() -> None:
    def count() -> int:
        return 1

    def half(count: float | None) -> float:
        return count / 2

    def anything(half):  # unannotated reads anything
        return half

    Pipeline([count, half, anything])


def test_two_producers_of_one_name() -> None:
    other = step(model, name="other", outputs="features")
    with pytest.raises(PipelineError, match="Two steps return 'features'") as caught:
        Pipeline([raw, features, other])
    assert line_of(features) in str(caught.value)


def test_two_steps_of_one_name() -> None:
    with pytest.raises(PipelineError, match="Two steps are named 'raw'"):
        Pipeline([raw, step(features, name="raw")])


def test_disagreeing_defaults_are_refused_unless_the_pipeline_declares_one() -> None:
    def other(raw: pd.DataFrame, alpha: float = 0.9) -> int:
        return 1

    with pytest.raises(PipelineError, match="'alpha' has the default"):
        Pipeline([raw, features, model, other])
    pipeline = Pipeline([raw, features, model, other], params={"alpha": 0.7})
    assert pipeline.params["alpha"].default == 0.7


def test_declared_parameters_can_be_required() -> None:
    def load(source: str) -> pd.DataFrame:
        return pd.DataFrame()

    pipeline = Pipeline([load], params={"source": REQUIRED})
    assert pipeline.params["source"].required
    with pytest.raises(PipelineError, match="no step returns"):
        Pipeline([load])


def test_a_parameter_may_not_also_be_an_output() -> None:
    with pytest.raises(PipelineError, match="either a parameter or a step's output"):
        Pipeline([raw, features], params={"features": 1})


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"backoff": -2}, "backoff must be a number"),
        ({"outputs": ()}, "at least one output"),
        ({"outputs": ("a", "a")}, "names an output twice"),
        ({"outputs": "not valid"}, "must be a Python identifier"),
        ({"inputs": {"nothing": "raw"}}, "wires 'nothing', which it does not take"),
        ({"outputs": ("a", "b")}, "declares it returns float"),
    ],
)
def test_bad_step_options_name_the_line(options: dict, fragment: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(fragment)) as caught:
        step(model, **options)
    assert line_of(model) in str(caught.value)


def test_unsupported_signatures_are_refused() -> None:
    def star(*frames: pd.DataFrame) -> int:
        return 0

    def positional(frame, /) -> int:
        return 0

    async def coroutine(raw: pd.DataFrame) -> int:
        return 0

    for func, fragment in ((star, "*frames"), (positional, "positionally"), (coroutine, "async")):
        with pytest.raises(PipelineError, match=re.escape(fragment)):
            step(func)


def test_an_empty_pipeline_is_refused() -> None:
    with pytest.raises(PipelineError, match="at least one step"):
        Pipeline([])


def test_code_changes_change_the_code_digest_but_decorators_do_not() -> None:
    assert step(model).code_digest == step(model, retries=3).code_digest
    assert step(model).code_digest != step(features).code_digest
    assert step(model).code_digest != step(model, version="2").code_digest


def test_a_module_level_pipeline_knows_its_reference() -> None:
    assert MODULE_PIPELINE.ref is not None and MODULE_PIPELINE.ref.endswith(":MODULE_PIPELINE")
    assert Pipeline([raw]).ref is None


MODULE_PIPELINE = Pipeline([raw, features, model], name="module_pipeline")
