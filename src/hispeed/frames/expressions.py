"""Column expressions for the Python stream API: `col`, `lit`, `func` and their operators.

An `Expr` is a node of the SQL statement model (`hispeed.sql.ast`) with Python operators on
top, so `col("status") == 200` is the very `BinaryOp` the parser makes of `status = 200`.
Names follow SQL's rule for unquoted identifiers: `col("user_id")` is the column `USER_ID`;
a name that is not a plain identifier (`col("user id")`, `col("lower")` written as
``col("`lower`")``) is taken exactly.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable
from typing import Any

from hispeed.errors import HispeedError
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.parser import parse_type

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT32 = 1 << 31
_INT64 = 1 << 63


def identifier(name: str) -> str:
    """A name as SQL reads it unquoted: a plain identifier upper-cased, any other as written
    (a name in backquotes is taken as written, without them)."""
    if len(name) > 1 and name.startswith("`") and name.endswith("`"):
        return name[1:-1]
    return name.upper() if _PLAIN.match(name) else name


class Expr:
    """A column expression: combine with operators (`==`, `&`, `+`, ...) and methods
    (`.alias`, `.is_null`, `.cast`, the aggregates `.count()`, `.max()`, ...)."""

    __slots__ = ("name", "node")

    def __init__(self, node: ast.Expr, name: str | None = None) -> None:
        #: the statement model's expression
        self.node = node
        #: the output column's name (`.alias`, or the column a plain reference names)
        self.name = name

    def __repr__(self) -> str:
        from hispeed.frames.render import expr_sql

        text = expr_sql(self.node)
        return f"Expr({text}{f' AS {self.name}' if self.name else ''})"

    def __bool__(self) -> bool:
        # `a == b and c` would silently test only c: Python's `and` cannot be overloaded
        raise HispeedError("an Expr has no truth value: combine conditions with & | ~")

    __hash__ = None  # type: ignore[assignment]  # == builds an expression

    # -- naming ---------------------------------------------------------------------------

    def alias(self, name: str) -> Expr:
        """This expression as the output column `name` (SQL's `expr AS name`)."""
        return Expr(self.node, identifier(name))

    # -- operators --------------------------------------------------------------------------

    def _binary(self, op: str, other: Any, reverse: bool = False) -> Expr:
        right = to_node(other)
        left, right = (right, self.node) if reverse else (self.node, right)
        return Expr(ast.BinaryOp(op, left, right))

    def __eq__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._binary("=", other)

    def __ne__(self, other: Any) -> Expr:  # type: ignore[override]
        return self._binary("!=", other)

    def __lt__(self, other: Any) -> Expr:
        return self._binary("<", other)

    def __le__(self, other: Any) -> Expr:
        return self._binary("<=", other)

    def __gt__(self, other: Any) -> Expr:
        return self._binary(">", other)

    def __ge__(self, other: Any) -> Expr:
        return self._binary(">=", other)

    def __and__(self, other: Any) -> Expr:
        return self._binary("AND", other)

    def __rand__(self, other: Any) -> Expr:
        return self._binary("AND", other, reverse=True)

    def __or__(self, other: Any) -> Expr:
        return self._binary("OR", other)

    def __ror__(self, other: Any) -> Expr:
        return self._binary("OR", other, reverse=True)

    def __invert__(self) -> Expr:
        return Expr(ast.UnaryOp("NOT", self.node))

    def __neg__(self) -> Expr:
        return Expr(ast.UnaryOp("-", self.node))

    def __add__(self, other: Any) -> Expr:
        return self._binary("+", other)

    def __radd__(self, other: Any) -> Expr:
        return self._binary("+", other, reverse=True)

    def __sub__(self, other: Any) -> Expr:
        return self._binary("-", other)

    def __rsub__(self, other: Any) -> Expr:
        return self._binary("-", other, reverse=True)

    def __mul__(self, other: Any) -> Expr:
        return self._binary("*", other)

    def __rmul__(self, other: Any) -> Expr:
        return self._binary("*", other, reverse=True)

    def __truediv__(self, other: Any) -> Expr:
        return self._binary("/", other)

    def __rtruediv__(self, other: Any) -> Expr:
        return self._binary("/", other, reverse=True)

    def __mod__(self, other: Any) -> Expr:
        return self._binary("%", other)

    def __getitem__(self, index: Any) -> Expr:
        """`expr[i]`: an ARRAY's element (from 1; negative from the end) or a MAP's value."""
        return Expr(ast.Subscript(self.node, to_node(index)))

    def field(self, name: str) -> Expr:
        """A STRUCT's field (SQL's `expr->name`)."""
        return Expr(ast.Dereference(self.node, identifier(name)), identifier(name))

    def concat(self, other: Any) -> Expr:
        """String concatenation (SQL's `||`)."""
        return self._binary("||", other)

    # -- predicates ---------------------------------------------------------------------------

    def is_null(self) -> Expr:
        """`expr IS NULL`."""
        return Expr(ast.IsNull(self.node))

    def is_not_null(self) -> Expr:
        """`expr IS NOT NULL`."""
        return Expr(ast.IsNull(self.node, negated=True))

    def is_in(self, values: Iterable[Any]) -> Expr:
        """`expr IN (values...)`."""
        return Expr(ast.InList(self.node, tuple(to_node(v) for v in values)))

    def between(self, low: Any, high: Any) -> Expr:
        """`expr BETWEEN low AND high` (both ends included)."""
        return Expr(ast.Between(self.node, to_node(low), to_node(high)))

    def like(self, pattern: str) -> Expr:
        """`expr LIKE pattern` (`%` any run of characters, `_` one character)."""
        return Expr(ast.Like(self.node, to_node(pattern)))

    def cast(self, type_: str) -> Expr:
        """`CAST(expr AS type)`, the type as SQL writes it (`"BIGINT"`, `"ARRAY<STRING>"`)."""
        return Expr(ast.Cast(self.node, parse_type(type_)))

    def call(self, function: str, *args: Any) -> Expr:
        """Any SQL function (or UDF) with this expression as its first argument."""
        return func(function, self, *args)

    # -- aggregates ---------------------------------------------------------------------------

    def count(self) -> Expr:
        """COUNT: the rows (`col("*").count()`) or the non-null values."""
        if isinstance(self.node, _Star):
            return Expr(ast.FunctionCall("COUNT", (), star=True))
        return func("COUNT", self)

    def count_distinct(self) -> Expr:
        """COUNT_DISTINCT: the distinct non-null values."""
        return func("COUNT_DISTINCT", self)

    def sum(self) -> Expr:
        """SUM."""
        return func("SUM", self)

    def avg(self) -> Expr:
        """AVG."""
        return func("AVG", self)

    def min(self) -> Expr:
        """MIN."""
        return func("MIN", self)

    def max(self) -> Expr:
        """MAX."""
        return func("MAX", self)

    def latest_by_offset(self, n: int | None = None) -> Expr:
        """LATEST_BY_OFFSET: the newest value (or the newest `n`)."""
        return func("LATEST_BY_OFFSET", self, *(() if n is None else (n,)))

    def earliest_by_offset(self, n: int | None = None) -> Expr:
        """EARLIEST_BY_OFFSET: the oldest value (or the oldest `n`)."""
        return func("EARLIEST_BY_OFFSET", self, *(() if n is None else (n,)))

    def collect_list(self) -> Expr:
        """COLLECT_LIST: the values in arrival order."""
        return func("COLLECT_LIST", self)

    def collect_set(self) -> Expr:
        """COLLECT_SET: the distinct values."""
        return func("COLLECT_SET", self)

    def histogram(self) -> Expr:
        """HISTOGRAM: each value's count."""
        return func("HISTOGRAM", self)

    def topk(self, k: int) -> Expr:
        """TOPK: the `k` greatest values."""
        return func("TOPK", self, k)

    def topk_distinct(self, k: int) -> Expr:
        """TOPKDISTINCT: the `k` greatest distinct values."""
        return func("TOPKDISTINCT", self, k)

    def stddev_samp(self) -> Expr:
        """STDDEV_SAMP: the sample standard deviation."""
        return func("STDDEV_SAMP", self)

    def stddev_pop(self) -> Expr:
        """STDDEV_POP: the population standard deviation."""
        return func("STDDEV_POP", self)

    def correlation(self, other: Any) -> Expr:
        """CORRELATION with another expression."""
        return func("CORRELATION", self, other)


class _Star(ast.Expr):
    """`col("*")`: only `.count()` takes it (COUNT(*))."""


def col(name: str) -> Expr:
    """A column by name; `"s.name"` is column `name` of the source read as `s` (in a join);
    `"*"` is every row, for `col("*").count()`."""
    if name == "*":
        return Expr(_Star())
    source, dot, rest = name.partition(".")
    if dot and _PLAIN.match(source) and rest:
        column = identifier(rest)
        return Expr(ast.ColumnRef(column, identifier(source)), column)
    column = identifier(name)
    return Expr(ast.ColumnRef(column), column)


def lit(value: Any) -> Expr:
    """A literal value: None, bool, int, float (DOUBLE), decimal.Decimal or str."""
    if isinstance(value, Expr):
        return value
    if value is None:
        return Expr(ast.Literal(None, None))
    if isinstance(value, bool):
        return Expr(ast.Literal(value, T.BOOLEAN))
    if isinstance(value, int):
        if -_INT32 <= value < _INT32:
            return Expr(ast.Literal(value, T.INTEGER))
        if -_INT64 <= value < _INT64:
            return Expr(ast.Literal(value, T.BIGINT))
        raise HispeedError(f"{value} does not fit a BIGINT")
    if isinstance(value, float):
        return Expr(ast.Literal(value, T.DOUBLE))
    if isinstance(value, decimal.Decimal):
        _sign, digits, exponent = value.as_tuple()
        scale = max(-int(exponent), 0)
        precision = max(len(digits), scale, 1)
        return Expr(ast.Literal(value, T.decimal(precision, scale)))
    if isinstance(value, str):
        return Expr(ast.Literal(value, T.STRING))
    raise HispeedError(
        f"lit() takes None, bool, int, float, Decimal or str, not {type(value).__name__}"
    )


def func(name: str, *args: Any) -> Expr:
    """A call of any SQL function, aggregate or UDF by name: `func("UCASE", col("name"))`."""
    return Expr(ast.FunctionCall(name.upper(), tuple(to_node(a) for a in args)))


def to_node(value: Any) -> ast.Expr:
    """The statement model's expression for an `Expr` or a Python value (a literal)."""
    if isinstance(value, Expr):
        if isinstance(value.node, _Star):
            raise HispeedError('col("*") stands only in col("*").count()')
        return value.node
    return lit(value).node


def as_expr(value: str | Expr) -> Expr:
    """A column name or an expression, as the frame methods take them."""
    return col(value) if isinstance(value, str) else value
