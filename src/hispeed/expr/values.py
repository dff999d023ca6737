"""The value of one column in INSERT ... VALUES: an expression of no columns, evaluated once
and converted to the column's type, or an error in ksqlDB's words at the value's position."""

from __future__ import annotations

import pyarrow as pa

from hispeed.errors import HispeedError
from hispeed.expr.casts import coerce
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, error_at
from hispeed.functions.registry import EvalContext
from hispeed.sql import ast
from hispeed.sql.types import SqlType

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
    got = compiled.type if compiled.type is not None else "NULL"
    try:
        arr = compiled(one, ctx)
        value = arr[0].as_py()
        errors = len(ctx.errors)
        out = coerce(arr, compiled.type, column_type, ctx).cast(column_type.to_arrow())
    except HispeedError:
        raise
    except _CONVERSION_ERRORS:
        out, errors = None, -1
    if out is None or len(ctx.errors) > errors:  # a conversion that failed, or made NULL
        raise error_at(
            expr,
            f"Failed to insert values into '{target}'. Expected type {column_type} for field "
            f"{column} but got {got}({value})",
        )
    return out
