"""Run search: the --where and --sort languages, parsed to SQL over the metadata tables.

    where   := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | "(" where ")" | test
    test    := field op value | field ["not"] "in" "(" value ("," value)* ")"
             | field "is" ["not"] "null" | field ["not"] "like" string
    field   := metrics.NAME | params.NAME | tags.NAME | ATTRIBUTE
    op      := = | == | != | <> | < | <= | > | >=
    value   := number | 'text' | "text" | true | false | bare-word

    sort    := key ("," key)*      key := ["-" | "+"] field

Metric fields compare a run's latest value of that metric. Param fields compare numerically
against a number and as text against text. NAME may be quoted with backticks for names with
spaces or other punctuation: metrics.`val loss`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from loopml.errors import InvalidQueryError
from loopml.store.records import RUN_STATUSES
from loopml.store.schema import experiments, latest_metrics, params, runs, tags

NAMESPACES = ("metrics", "params", "tags")
ATTRIBUTES: dict[str, str] = {
    "id": "text",
    "name": "text",
    "status": "text",
    "experiment": "text",
    "parent": "text",
    "host": "text",
    "user": "text",
    "git_commit": "text",
    "git_dirty": "bool",
    "seed": "number",
    "start_time": "time",
    "end_time": "time",
    "duration": "number",
}
KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "true", "false"}
COMPARISONS = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
EXAMPLE = 'Example: --where "metrics.auc > 0.7 and params.lr = 0.1"'

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<punct>[(),])
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<word>(?:`[^`]+`|[A-Za-z0-9_][\w\-]*)(?:\.(?:`[^`]+`|[\w\-/.:]+))?)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Field:
    """A searchable field: a namespace ('metrics', 'params', 'tags', 'attr') and a name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return self.name if self.namespace == "attr" else f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str  # = != < <= > >= in like null
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; unknown characters are a clear error."""
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _error(text, position, f"unexpected character {text[position]!r}")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup or "", match.group(), position))
        position = match.end()
    return tokens


def parse_field(text: str, word: str, position: int) -> Field:
    """A field from its written form, such as metrics.auc or status."""
    head, dot, rest = word.partition(".")
    if dot:
        if head not in NAMESPACES:
            raise _error(text, position, f"unknown field {word!r}", _field_hint())
        return Field(head, rest.strip("`"))
    if word in ATTRIBUTES:
        return Field("attr", word)
    raise _error(text, position, f"unknown field {word!r}", _field_hint())


def _field_hint() -> str:
    return (
        "Fields are metrics.NAME, params.NAME, tags.NAME or one of: " + ", ".join(ATTRIBUTES) + "."
    )


def _error(text: str, position: int, problem: str, hint: str = EXAMPLE) -> InvalidQueryError:
    return InvalidQueryError(
        f"Cannot read the expression {text!r}: {problem} at position {position + 1}. {hint}"
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self, expected: str) -> Token:
        token = self.peek()
        if token is None:
            raise _error(self.text, len(self.text), f"expected {expected} but the expression ended")
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() in words:
            self.index += 1
            return True
        return False

    def parse(self) -> Any:
        if not self.tokens:
            raise _error(self.text, 0, "the expression is empty")
        node = self.parse_or()
        leftover = self.peek()
        if leftover is not None:
            raise _error(self.text, leftover.position, f"unexpected {leftover.text!r}")
        return node

    def parse_or(self) -> Any:
        items = [self.parse_and()]
        while self.keyword("or"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Any:
        items = [self.parse_not()]
        while self.keyword("and"):
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_not(self) -> Any:
        if self.keyword("not"):
            return Not(self.parse_not())
        token = self.peek()
        if token is not None and token.text == "(":
            self.index += 1
            node = self.parse_or()
            self.expect_punct(")")
            return node
        return self.parse_test()

    def expect_punct(self, char: str) -> None:
        token = self.next(f"'{char}'")
        if token.text != char:
            raise _error(self.text, token.position, f"expected '{char}' but found {token.text!r}")

    def parse_test(self) -> Condition:
        token = self.next("a field such as metrics.auc")
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            raise _error(self.text, token.position, f"expected a field but found {token.text!r}")
        field = parse_field(self.text, token.text, token.position)
        if self.keyword("is"):
            negate = self.keyword("not")
            if not self.keyword("null"):
                raise _error(self.text, self._position(), "expected 'null' after 'is'")
            return Condition(field, "null", (), negate)
        negate = self.keyword("not")
        if self.keyword("in"):
            return Condition(field, "in", self.parse_list(), negate)
        if self.keyword("like"):
            return Condition(field, "like", (self.parse_value(),), negate)
        if negate:
            raise _error(self.text, self._position(), "expected 'in' or 'like' after 'not'")
        op = self.next("a comparison such as > or =")
        if op.kind != "op":
            raise _error(self.text, op.position, f"expected a comparison but found {op.text!r}")
        return Condition(field, COMPARISONS[op.text], (self.parse_value(),))

    def parse_list(self) -> tuple[Any, ...]:
        self.expect_punct("(")
        values = [self.parse_value()]
        while (token := self.peek()) is not None and token.text == ",":
            self.index += 1
            values.append(self.parse_value())
        self.expect_punct(")")
        return tuple(values)

    def parse_value(self) -> Any:
        token = self.next("a value")
        if token.kind == "number":
            return float(token.text) if re.search(r"[.eE]", token.text) else int(token.text)
        if token.kind == "string":
            return re.sub(r"\\(['\"])", r"\1", token.text[1:-1])  # other backslashes stay
        lowered = token.text.lower()
        if token.kind == "word" and lowered in ("true", "false"):
            return lowered == "true"
        if token.kind == "word" and lowered not in KEYWORDS:
            return token.text
        raise _error(self.text, token.position, f"expected a value but found {token.text!r}")

    def _position(self) -> int:
        token = self.peek()
        return token.position if token is not None else len(self.text)


def parse_where(text: str) -> Any:
    """The syntax tree of a --where expression."""
    return _Parser(text).parse()


def parse_sort(specs: str | list[str] | tuple[str, ...]) -> list[SortKey]:
    """Sort keys from 'metrics.auc', '-metrics.auc' or a comma-separated list of them."""
    items = [specs] if isinstance(specs, str) else list(specs)
    keys = []
    for spec in (part.strip() for item in items for part in item.split(",")):
        if not spec:
            continue
        descending = spec.startswith("-")
        word = spec.lstrip("+-").strip()
        tokens = tokenize(word)
        if len(tokens) != 1 or tokens[0].kind != "word":
            raise InvalidQueryError(
                f"Cannot sort by {spec!r}: give a field such as -metrics.auc (descending) "
                "or start_time (ascending)."
            )
        keys.append(SortKey(parse_field(spec, word, 0), descending))
    return keys


# --- SQL ---------------------------------------------------------------------------------


def where_clause(node: Any, text: str = "") -> sa.ColumnElement[bool]:
    """SQL condition on the runs table (joined with experiments) for a syntax tree."""
    if isinstance(node, BoolOp):
        parts = [where_clause(item, text) for item in node.items]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
    if isinstance(node, Not):
        return sa.not_(where_clause(node.item, text))
    return _test_clause(node, text)


def _test_clause(test: Condition, text: str) -> sa.ColumnElement[bool]:
    if test.field.namespace == "attr":
        return _attribute_test(test, text)
    table = {"metrics": latest_metrics, "params": params, "tags": tags}[test.field.namespace]
    if test.op == "null":
        exists = _exists(table, test.field.name, sa.true())
        return exists if test.negate else sa.not_(exists)
    column = _value_column(test, table, text)
    return _exists(table, test.field.name, _compare(column, test))


def _exists(table: sa.Table, key: str, condition: sa.ColumnElement[bool]) -> Any:
    return (
        sa.select(sa.literal(1))
        .where(table.c.run_id == runs.c.id, table.c.key == key, condition)
        .exists()
    )


def _value_column(test: Condition, table: sa.Table, text: str) -> sa.ColumnElement[Any]:
    numeric = [isinstance(v, int | float) and not isinstance(v, bool) for v in test.values]
    if test.field.namespace == "metrics":
        if not all(numeric) or test.op == "like":
            raise InvalidQueryError(
                f"Cannot compare {test.field} with {_shown(test.values)} in {text!r}: metrics "
                "are numbers, so compare them with numbers, for example metrics.auc > 0.7."
            )
        return table.c.value
    if test.field.namespace == "tags" and any(numeric):
        raise InvalidQueryError(
            f"Cannot compare {test.field} with {_shown(test.values)} in {text!r}: tags are "
            f"text, so quote the value, for example {test.field} = '{test.values[0]}'."
        )
    if test.field.namespace == "params" and any(numeric):
        if not all(numeric) or test.op == "like":
            raise InvalidQueryError(
                f"Cannot mix numbers and text in one test of {test.field} in {text!r}."
            )
        return table.c.value_num
    return table.c.value


def _shown(values: tuple[Any, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def _compare(column: sa.ColumnElement[Any], test: Condition) -> sa.ColumnElement[bool]:
    values = [_bindable(column, v, test) for v in test.values]
    if test.op == "in":
        clause = column.in_(values)
    elif test.op == "like":  # case-insensitive on every backend; backslash escapes % and _
        clause = column.ilike(str(values[0]), escape="\\")
    else:
        clause = _OPERATORS[test.op](column, values[0])
    return sa.not_(clause) if test.negate else clause


def _bindable(column: sa.ColumnElement[Any], value: Any, test: Condition) -> Any:
    if isinstance(column.type, sa.String | sa.Text):
        return _text_of(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(column.type, sa.Integer):
        if not -(2**63) <= value < 2**63:
            raise InvalidQueryError(
                f"Cannot compare {test.field} with {value}: the value does not fit in 64 bits."
            )
        return value
    try:
        return float(value)
    except OverflowError:
        raise InvalidQueryError(
            f"Cannot compare {test.field} with {value}: the value is too large."
        ) from None


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_OPERATORS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


def attribute_column(name: str) -> sa.ColumnElement[Any]:
    """The SQL expression of a run attribute."""
    if name == "experiment":
        return experiments.c.name
    if name == "parent":
        return runs.c.parent_id
    if name == "user":
        return runs.c.user_name
    if name == "duration":
        return runs.c.end_time - runs.c.start_time
    return runs.c[name]


def _attribute_test(test: Condition, text: str) -> sa.ColumnElement[bool]:
    kind = ATTRIBUTES[test.field.name]
    column = attribute_column(test.field.name)
    if test.op == "null":
        return column.is_not(None) if test.negate else column.is_(None)
    values = tuple(_attribute_value(test.field.name, kind, v, text, test.op) for v in test.values)
    return _compare(column, Condition(test.field, test.op, values, test.negate))


def _attribute_value(name: str, kind: str, value: Any, text: str, op: str) -> Any:
    if kind == "time" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            raise InvalidQueryError(
                f"Cannot read {value!r} as a time for {name} in {text!r}: use ISO format such "
                "as '2026-11-01' or '2026-11-01T08:30', or seconds since the epoch."
            ) from None
    if kind in ("number", "time") and not isinstance(value, int | float):
        raise InvalidQueryError(
            f"Cannot compare {name} with {value!r} in {text!r}: {name} is a number."
        )
    if kind == "bool" and not isinstance(value, bool):
        raise InvalidQueryError(
            f"Cannot compare {name} with {value!r} in {text!r}: {name} is true or false."
        )
    if name == "status" and op != "like" and value not in RUN_STATUSES:
        raise InvalidQueryError(
            f"Unknown status {value!r} in {text!r}: statuses are {', '.join(RUN_STATUSES)}."
        )
    return value


def apply_sort(query: sa.Select[Any], keys: list[SortKey]) -> sa.Select[Any]:
    """Order a runs query by sort keys (missing values last), then newest first."""
    order: list[Any] = []
    for index, key in enumerate(keys):
        columns, query = _sort_columns(query, key.field, index)
        for column in columns:
            order.append((column.desc() if key.descending else column.asc()).nulls_last())
    order.extend([runs.c.start_time.desc(), runs.c.id])
    return query.order_by(*order)


def _sort_columns(
    query: sa.Select[Any], field: Field, index: int
) -> tuple[list[sa.ColumnElement[Any]], sa.Select[Any]]:
    if field.namespace == "attr":
        return [attribute_column(field.name)], query
    table = {"metrics": latest_metrics, "params": params, "tags": tags}[field.namespace]
    alias = table.alias(f"sort_{index}")
    query = query.outerjoin(alias, sa.and_(alias.c.run_id == runs.c.id, alias.c.key == field.name))
    if field.namespace == "params":  # numbers in numeric order, then text
        return [alias.c.value_num, alias.c.value], query
    return [alias.c.value], query


def search(
    connection: sa.Connection,
    *,
    experiment_ids: list[str] | None = None,
    where: str | None = None,
    sort: str | list[str] | None = None,
    limit: int | None = None,
    parent_id: str | None = None,
) -> list[str]:
    """Ids of the runs that match, in sort order."""
    query = sa.select(runs.c.id).select_from(
        runs.join(experiments, runs.c.experiment_id == experiments.c.id)
    )
    if experiment_ids is not None:
        query = query.where(runs.c.experiment_id.in_(experiment_ids))
    if parent_id is not None:
        query = query.where(runs.c.parent_id == parent_id)
    if where:
        query = query.where(where_clause(parse_where(where), where))
    query = apply_sort(query, parse_sort(sort) if sort else [])
    if limit is not None:
        query = query.limit(limit)
    return list(connection.execute(query).scalars())


def fields_of(node: Any) -> list[Field]:
    """The fields a --where syntax tree tests, in order of appearance, without repeats."""
    found: list[Field] = []
    stack = [node]
    while stack:
        item = stack.pop(0)
        if isinstance(item, BoolOp):
            stack[:0] = list(item.items)
        elif isinstance(item, Not):
            stack.insert(0, item.item)
        elif item.field not in found:
            found.append(item.field)
    return found
