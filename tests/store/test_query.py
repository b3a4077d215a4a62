"""The --where and --sort languages: what parses, and how bad input is reported."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidQueryError
from loopml.store.query import (
    BoolOp,
    Condition,
    Field,
    Not,
    SortKey,
    fields_of,
    parse_sort,
    parse_where,
    search,
    where_clause,
)
from loopml.store.schema import metadata


def test_precedence_and_binds_tighter_than_or() -> None:
    tree = parse_where("metrics.a > 1 or metrics.b < 2 and not params.c = 'x'")
    assert isinstance(tree, BoolOp) and tree.op == "or"
    right = tree.items[1]
    assert isinstance(right, BoolOp) and right.op == "and"
    assert isinstance(right.items[1], Not)


def test_values_keep_their_types() -> None:
    tree = parse_where("params.a = 1 and params.b = 1.5 and params.c = 'x y' and params.d = true")
    assert [t.values[0] for t in tree.items] == [1, 1.5, "x y", True]


def test_names_with_punctuation_use_backticks_or_dots() -> None:
    assert parse_where("metrics.`val loss` < 1").field == Field("metrics", "val loss")
    assert parse_where("metrics.val/auc > 0.5").field == Field("metrics", "val/auc")
    assert parse_where("metrics.val.auc > 0.5").field == Field("metrics", "val.auc")


def test_bare_words_are_text_values() -> None:
    assert parse_where("status = finished") == Condition(
        Field("attr", "status"), "=", ("finished",)
    )
    assert parse_where("git_commit = 3fa2b1").values == ("3fa2b1",)


def test_backslashes_survive_except_before_quotes() -> None:
    assert parse_where(r"name like 'a\_b'").values == (r"a\_b",)
    assert parse_where(r"name = 'it\'s'").values == ("it's",)


def test_fields_of_lists_each_field_once_in_order() -> None:
    tree = parse_where("metrics.auc > 0.7 and (params.lr = 0.1 or metrics.auc < 0.9)")
    assert fields_of(tree) == [Field("metrics", "auc"), Field("params", "lr")]


def test_sort_keys() -> None:
    assert parse_sort("-metrics.auc, params.lr") == [
        SortKey(Field("metrics", "auc"), True),
        SortKey(Field("params", "lr"), False),
    ]
    assert parse_sort(["start_time", "+name"]) == [
        SortKey(Field("attr", "start_time"), False),
        SortKey(Field("attr", "name"), False),
    ]


MALFORMED = [
    ("", "empty"),
    ("metrics.auc >", "expected a value but the expression ended"),
    ("metrics.auc > and", "expected a value but found 'and'"),
    ("metrics.auc 0.7", "expected a comparison"),
    ("metrics.auc > 0.7 and", "expected a field such as metrics.auc"),
    ("(metrics.auc > 0.7", "expected ')'"),
    ("metrics.auc > 0.7)", "unexpected ')'"),
    ("auc > 0.7", "unknown field 'auc'"),
    ("metric.auc > 0.7", "unknown field 'metric.auc'"),
    ("metrics.auc > 'high'", "metrics are numbers"),
    ("metrics.auc like 'x%'", "metrics are numbers"),
    ("params.lr in (0.1, 'x')", "Cannot mix numbers and text"),
    ("metrics.auc ! 0.7", "unexpected character '!'"),
    ("status = done", "Unknown status 'done'"),
    ("start_time > 'yesterday'", "Cannot read 'yesterday' as a time"),
    ("seed = 'abc'", "seed is a number"),
    ("git_dirty = 1", "git_dirty is true or false"),
    ("metrics.auc is 0.7", "expected 'null' after 'is'"),
    ("params.x not = 1", "expected 'in' or 'like' after 'not'"),
    ("tags.epochs > 5", "tags are text, so quote the value"),
    ("seed = 99999999999999999999", "does not fit in 64 bits"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_expressions_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError, match="Cannot|Unknown") as caught:
        where_clause(parse_where(text), text)
    assert message in str(caught.value)


def test_bad_sort_keys_are_reported() -> None:
    with pytest.raises(InvalidQueryError, match="Cannot sort by 'metrics.auc desc'"):
        parse_sort("metrics.auc desc")
    with pytest.raises(InvalidQueryError, match="unknown field 'auc'"):
        parse_sort("-auc")


@pytest.fixture(scope="module")
def empty_store() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="metrics.aucparmsl_ ()<>=!'\"0123456789,-andornotinisnull", max_size=40))
def test_any_text_runs_or_fails_with_a_query_error(empty_store: sa.Engine, text: str) -> None:
    with empty_store.connect() as connection, contextlib.suppress(InvalidQueryError):
        search(connection, where=text, sort="-metrics.auc")
