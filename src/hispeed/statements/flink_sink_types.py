"""An INSERT INTO a Flink sink against the sink's declared column types, as Flink checks it.

Flink fills a sink by position and compares each query column's type with the sink's: the
same type passes; a type Flink casts implicitly (a widening: INT to BIGINT, any number to
DECIMAL or DOUBLE, TIMESTAMP to DATE or TIME, NULL to any; Flink's `LogicalTypeCasts`
implicit rules) is cast to the sink's; any other is refused ("Column types of query result
and sink for '...' do not match"), here at the query column's line and column. One
exception, where hispeed's functions type their results otherwise than Flink's (`AVG` of a
BIGINT is a DOUBLE here, a BIGINT in Flink): an AVG into a narrower number keeps the
query's type; any other number into a narrower one (a BIGINT or DOUBLE into an INT) is
refused, as Flink refuses it. So is a BIGINT into a TIMESTAMP or back (hispeed's ROWTIME and
the bounds of windows over it are BIGINT milliseconds, Flink's TIMESTAMP(3)) (docs/sql.md,
"Flink SQL's DDL").
"""

from __future__ import annotations

import dataclasses

from hispeed.errors import SqlError
from hispeed.plan.query import plan_query
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.flink import FlinkTable
from hispeed.statements.base import EngineParts

#: Flink's implicit casts between the types hispeed has: target -> the sources it takes
_IMPLICIT = {
    "BIGINT": {"INTEGER"},
    "DECIMAL": {"INTEGER", "BIGINT", "DOUBLE", "DECIMAL"},
    "DOUBLE": {"INTEGER", "BIGINT", "DECIMAL"},
    "DATE": {"TIMESTAMP"},
    "TIME": {"TIMESTAMP"},
}


def _same(query: T.SqlType, sink: T.SqlType) -> bool:
    if query.name != sink.name:
        return False
    if query.name == "DECIMAL":
        return (query.precision, query.scale) == (sink.precision, sink.scale)
    return query == sink if query.name in ("ARRAY", "MAP", "STRUCT") else True


def _typed_otherwise(expr: ast.Expr | None) -> bool:
    """Whether `expr` is a call whose result hispeed types otherwise than Flink: AVG of an
    integer is a DOUBLE here, the argument's type in Flink (Nexmark q4's AVG(final) into a
    BIGINT column is a valid Flink statement)."""
    return isinstance(expr, ast.FunctionCall) and expr.name == "AVG"


def _fits(query: T.SqlType, sink: T.SqlType, expr: ast.Expr | None = None) -> str:
    """'same', 'cast' (Flink casts implicitly), 'keep' (an AVG into a narrower number: the
    query's type is kept, see `_typed_otherwise`) or 'refuse' (any other narrowing: a BIGINT
    or DOUBLE into an INT, as Flink refuses it)."""
    if _same(query, sink):
        return "same"
    if query.name in _IMPLICIT.get(sink.name, ()):
        return "cast"
    if query.is_numeric and sink.is_numeric and _typed_otherwise(expr):
        return "keep"
    if {query.name, sink.name} == {"BIGINT", "TIMESTAMP"}:
        return "keep"  # hispeed's ROWTIME and its windows' bounds are BIGINT milliseconds
    return "refuse"


def _schema(columns: list[tuple[str, T.SqlType]]) -> str:
    """Flink's way of listing a schema in its message: [NAME: TYPE, ...]."""
    return "[" + ", ".join(f"{n}: {t}" for n, t in columns) + "]"


def checked(parts: EngineParts, query: ast.Select, sink: FlinkTable) -> ast.Select:
    """`query` (its items already named by the sink's columns) with each item cast to its
    sink column's type where Flink casts implicitly; an item Flink would refuse is refused
    at its place."""
    declared = [(c.name, c.type) for c in sink.columns if c.type is not None]
    shown = _schema([(k, t) for k, t in declared if t is not None])
    plan = plan_query(query, parts.catalog, parts.log, "TABLE", sink.name)
    got = [(c.name, c.type) for c in plan.outputs]
    if len(got) != len(declared):
        return query  # `*` over a source: its columns are the plan's to check
    items = list(query.items)
    for n, ((_, q_type), (name, s_type)) in enumerate(zip(got, declared, strict=True)):
        assert s_type is not None
        item = items[n] if n < len(items) else None
        fit = _fits(q_type, s_type, item.expr if isinstance(item, ast.SelectItem) else None)
        if fit == "refuse":
            where = item.pos if item is not None else query.pos
            raise SqlError(
                f"Column types of query result and sink for '{sink.name}' do not match. "
                f"Cause: Incompatible types for sink column '{name}' at position {n}: the "
                f"query gives {q_type}, the sink declares {s_type}. Query schema: "
                f"{_schema(got)} Sink schema: {shown}",
                *where,
            )
        if fit == "cast" and isinstance(item, ast.SelectItem):
            cast = ast.Cast(item.expr, s_type, pos=item.pos)
            items[n] = dataclasses.replace(item, expr=cast)
    return dataclasses.replace(query, items=tuple(items))


__all__ = ["checked"]
