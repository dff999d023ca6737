"""Arithmetic evaluators: + - * / % with Java's integer semantics and exact DECIMALs."""

from __future__ import annotations

import decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.expr.casts import coerce
from hispeed.expr.scope import Compiled, Evaluator
from hispeed.functions.registry import EvalContext, rowwise
from hispeed.sql import types as T
from hispeed.sql.joins import IntervalLiteral
from hispeed.sql.types import SqlType


def arithmetic(
    op: str, left: Compiled, right: Compiled, lt: SqlType, rt: SqlType, result: SqlType
) -> Evaluator:
    """`left <op> right` of types `lt` and `rt`, computed as `result` (integer division by zero
    is NULL and reported)."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        la = left(b, ctx)
        ra = right(b, ctx)
        if result.name == "DECIMAL":
            return _decimal_arith(op, la, ra, result, ctx)
        la = coerce(la, lt, result, ctx)
        ra = coerce(ra, rt, result, ctx)
        if op == "+":
            return pc.add(la, ra)
        if op == "-":
            return pc.subtract(la, ra)
        if op == "*":
            return pc.multiply(la, ra)
        if result.is_integral:
            return _java_integer_division(op, la, ra, result.to_arrow(), ctx)
        if op == "/":
            return pc.divide(la, ra)
        return rowwise(ctx, [la, ra], T.DOUBLE, lambda x, y: float(np.fmod(x, y)))

    return ev


def _java_integer_division(
    op: str, la: pa.Array, ra: pa.Array, arrow_type: pa.DataType, ctx: EvalContext
) -> pa.Array:
    """Java's `/` or `%` of two integer columns, exact over the whole range: the quotient
    truncates toward zero, the remainder takes the dividend's sign, MIN / -1 wraps to MIN (as
    Java's long arithmetic); a division by zero is NULL and reported on its row."""
    zero = pc.fill_null(pc.equal(ra, 0), False)
    if pc.any(zero).as_py():
        for i in np.nonzero(np.asarray(zero))[0]:
            ctx.error(int(i), "/ by zero" if op == "/" else "% by zero")
    # NULL where either side is NULL or the divisor is 0; those rows divide 0 by 1
    unset = pc.or_(pc.or_(pc.is_null(la), pc.is_null(ra)), zero)
    a = np.asarray(pc.fill_null(la, 0)).astype(arrow_type.to_pandas_dtype(), copy=False)
    d = np.asarray(pc.if_else(unset, 1, pc.fill_null(ra, 1))).astype(a.dtype, copy=False)
    with np.errstate(all="ignore"):
        rem = np.fmod(a, d)
        out = rem if op == "%" else (a - rem) // d
    mask = np.asarray(unset) if pc.any(unset).as_py() else None
    return pa.array(out, type=arrow_type, mask=mask)


def _as_decimal(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_decimal(t):
        return arr
    return arr.cast(pa.decimal128(10 if t.bit_width <= 32 else 19, 0))


def _decimal_arith(
    op: str, la: pa.Array, ra: pa.Array, result: SqlType, ctx: EvalContext
) -> pa.Array:
    assert result.scale is not None and result.precision is not None
    if op not in ("+", "-", "*"):
        return _decimal_rows(op, la, ra, result, ctx)
    # whole columns in Arrow's decimal arithmetic, rounded half up to the result's scale;
    # Python's decimal only when Arrow cannot (a result past 38 digits)
    try:
        fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[op]
        exact = fn(_as_decimal(la), _as_decimal(ra))
        rounded = pc.round(exact, ndigits=result.scale, round_mode="half_up")
        return rounded.cast(pa.decimal128(result.precision, result.scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _decimal_rows(op, la, ra, result, ctx)


def _decimal_rows(
    op: str, la: pa.Array, ra: pa.Array, result: SqlType, ctx: EvalContext
) -> pa.Array:
    """DECIMAL arithmetic row by row in Python's decimal, exact to 80 digits."""
    assert result.scale is not None
    quant = decimal.Decimal(1).scaleb(-result.scale)

    def one(x: Any, y: Any) -> decimal.Decimal:
        dx, dy = decimal.Decimal(x), decimal.Decimal(y)
        with decimal.localcontext() as c:
            c.prec = 80
            if op == "+":
                v = dx + dy
            elif op == "-":
                v = dx - dy
            elif op == "*":
                v = dx * dy
            elif op == "/":
                if dy == 0:
                    raise ZeroDivisionError("Division by zero")
                v = dx / dy
            else:
                v = dx % dy
            return v.quantize(quant, rounding=decimal.ROUND_HALF_UP)

    return rowwise(ctx, [la, ra], result, one)


def moved_timestamp(op: str, e: Any, left: Compiled) -> Compiled | None:
    """`ts + INTERVAL ...` or `ts - INTERVAL ...` (Flink SQL's): the TIMESTAMP moved by the
    interval's milliseconds; None for any other arithmetic (ksqlDB's rules)."""
    right = getattr(e, "right", None)
    if op not in ("+", "-") or left.type != T.TIMESTAMP or not isinstance(right, IntervalLiteral):
        return None
    millis = right.value if op == "+" else -right.value

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        ms = pc.cast(left(b, ctx), pa.int64())
        return pc.cast(pc.add(ms, pa.scalar(millis, pa.int64())), pa.timestamp("ms"))

    return Compiled(T.TIMESTAMP, ev)
