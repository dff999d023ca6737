"""The value of one column in INSERT ... VALUES: an expression of no columns, evaluated once
and converted to the column's type, or an error in ksqlDB's words at the value's position.

Which types a column takes is ksqlDB's rule for INSERT VALUES (its GenericExpressionResolver
coerces with `DefaultSqlValueCoercer.STRICT`): numbers only widen (INT to BIGINT, DECIMAL or
DOUBLE; BIGINT to DECIMAL or DOUBLE; DECIMAL to DOUBLE), a text is parsed only for TIMESTAMP,
TIME, DATE and BYTES, nothing else changes type (1.5 into an INT, 1 into a BOOLEAN or a
STRING, '5' into an INT are refused), and collections are checked element by element."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from hispeed.errors import HispeedError
from hispeed.expr.casts import coerce
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, error_at
from hispeed.functions.registry import EvalContext
from hispeed.sql import ast
from hispeed.sql.types import SqlType

#: the types each type's values may go into besides its own (ksqlDB's STRICT coercions)
_WIDER: dict[str, frozenset[str]] = {
    "INTEGER": frozenset({"BIGINT", "DECIMAL", "DOUBLE"}),
    "BIGINT": frozenset({"DECIMAL", "DOUBLE"}),
    "DECIMAL": frozenset({"DOUBLE"}),
    "STRING": frozenset({"TIMESTAMP", "TIME", "DATE", "BYTES"}),
}


def assignable(source: SqlType | None, target: SqlType) -> bool:
    """Whether INSERT VALUES takes a value of type `source` (None: NULL) for a column of type
    `target`, as ksqlDB does (see the module's notes). A DECIMAL that does not fit its column
    passes here and fails on its value."""
    if source is None:
        return True
    if source.name != target.name:
        return target.name in _WIDER.get(source.name, frozenset())
    if source.name in ("ARRAY", "MAP"):
        return (
            (source.key is None or target.key is None or assignable(source.key, target.key))
            and source.element is not None
            and target.element is not None
            and assignable(source.element, target.element)
        )
    if source.name == "STRUCT":
        # field by field, by name; a field the value lacks is NULL, one the column lacks dropped
        given = dict(source.fields)
        return all(assignable(given[n], t) for n, t in target.fields if n in given)
    return True


#: what Arrow raises for a value it cannot convert (a text that is no number, a DECIMAL that
#: does not fit, a list where a struct belongs) and Python for a value out of range
_CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, ArithmeticError)


def insert_value(
    expr: ast.Expr, target: str, column: str, column_type: SqlType, ctx: EvalContext
) -> pa.Array:
    """`expr` as one value of `column_type` for column `column` of source `target`."""
    compiled = compile_expr(expr, Scope([]))
    one = pa.RecordBatch.from_pydict({"$": [0]})
    value: object = "?"
    # as ksqlDB says it: the value's base type (DECIMAL, not DECIMAL(2, 1)) and its value
    got = compiled.type.name if compiled.type is not None else "NULL"
    try:
        arr = compiled(one, ctx)
        value = arr[0].as_py()
        errors = len(ctx.errors)
        if not assignable(compiled.type, column_type):
            out = None
        elif column_type.name == "DECIMAL" and value is not None:
            # the value itself, if it fits without rounding (Arrow's cast of an INT to a
            # DECIMAL wants room for any INT: 1 would not go into DECIMAL(4, 2))
            out = pa.array([Decimal(str(value))], column_type.to_arrow())
        else:
            out = coerce(arr, compiled.type, column_type, ctx).cast(column_type.to_arrow())
    except HispeedError:
        raise
    except _CONVERSION_ERRORS:
        out, errors = None, -1
    if out is None or len(ctx.errors) > errors:  # a conversion that failed, or made NULL
        shown = str(value).lower() if isinstance(value, bool) else value
        raise error_at(
            expr,
            f"Failed to insert values into '{target}'. Expected type {column_type} for field "
            f"{column} but got {got}({shown})",
        )
    return out
