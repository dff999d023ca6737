"""CAST and the implicit widenings: converting Arrow columns from one SQL type to another.

`cast_array` is CAST with ksqlDB's rules (a row that cannot convert becomes NULL and is
reported); `coerce` widens a value for comparing or combining (INT -> BIGINT -> DECIMAL ->
DOUBLE); `sql_text` is how ksqlDB prints a value of a nested type cast to STRING.
"""

from __future__ import annotations

import base64
import decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError
from hispeed.expr import _temporal
from hispeed.expr.scope import Compiled
from hispeed.functions.registry import EvalContext, rowwise
from hispeed.functions.signatures import decimal_to_double
from hispeed.sql import types as T
from hispeed.sql.javatext import java_double
from hispeed.sql.types import SqlType


def _null_array(t: SqlType | None, n: int) -> pa.Array:
    return pa.nulls(n, t.to_arrow() if t is not None else pa.null())


def broadcast(value: Any, t: SqlType | None, n: int) -> pa.Array:
    """A column of `n` rows that all hold `value` (of type `t`)."""
    if value is None:
        return _null_array(t, n)
    assert t is not None
    arrow = t.to_arrow()
    if isinstance(value, bool | int | float) and not pa.types.is_decimal(arrow):
        return pa.array(np.full(n, value), arrow) if n else pa.array([], arrow)
    return pc.fill_null(pa.nulls(n, arrow), pa.scalar(value, arrow)) if n else pa.array([], arrow)


def cast_array(
    arr: pa.Array,
    source: SqlType | None,
    target: SqlType,
    ctx: EvalContext,
    *,
    expression: str = "",
    column: str = "",
) -> pa.Array:
    """CAST with ksqlDB's rules; rows that cannot convert become NULL and are reported.

    A row's report names the value, its type and `column` (the cast's operand, when it is
    a column), after the text of the CAST `expression`: a user's message, as ksqlDB's
    processing log gives, not the Python exception the conversion raised."""
    inner = EvalContext()
    out = _convert(arr, source, target, inner)
    if inner.errors:
        assert source is not None  # a NULL column converts without errors
        for row, message in inner.errors:
            ctx.error(row, _failure(arr[row].as_py(), source, target, message, expression, column))
    return out


def _failure(
    value: Any, source: SqlType, target: SqlType, cause: str, expression: str, column: str
) -> str:
    shown = f"'{value}'" if isinstance(value, str) else sql_text(value, source)
    what = f"the {source} value {shown}" + (f" of column {column}" if column else "")
    verdict = (
        f"does not fit in {target}" if _OVERFLOW in cause else f"cannot be converted to {target}"
    )
    return (f"{expression} failed: " if expression else "") + f"{what} {verdict}"


#: how a value too large for its DECIMAL is told (see `_rescale` and `_fitting_rows`)
_OVERFLOW = "does not fit"


def _convert(arr: pa.Array, source: SqlType | None, target: SqlType, ctx: EvalContext) -> pa.Array:
    arrow = target.to_arrow()
    if source is None or pa.types.is_null(arr.type):
        return pa.nulls(len(arr), arrow)
    if arr.type == arrow:
        return arr
    if target.name == "STRING":
        return _to_string(arr, source, ctx)
    if source.name == "STRING" and target.name == "BOOLEAN":
        # ksqlDB's SqlBooleans.parseBoolean: true for a prefix of 'true' or 'yes', any
        # other text false
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        return pc.if_else(
            pc.is_in(lowered, value_set=pa.array(_TRUE_PREFIXES)),
            True,
            pc.if_else(pc.is_null(lowered), None, False),
        )
    if source.name == "STRING" and target.is_numeric:
        trimmed = pc.utf8_trim_whitespace(arr)
        try:
            if target.name == "DECIMAL":
                return _rescale(pc.cast(trimmed, pa.decimal128(38, target.scale or 0)), target, ctx)
            return pc.cast(trimmed, arrow)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return rowwise(ctx, [trimmed], target, lambda s: _parse_number(s, target))
    if source.is_numeric and target.is_numeric:
        if target.name == "DECIMAL":
            return _rescale(arr, target, ctx)
        if target.is_integral and source.name in ("DOUBLE", "DECIMAL"):
            # Java truncates toward zero
            truncated = pc.trunc(arr if source.name == "DOUBLE" else decimal_to_double(arr))
            return pc.cast(truncated, arrow, safe=False)
        if source.name == "DECIMAL" and target.name == "DOUBLE":
            return decimal_to_double(arr)
        return pc.cast(arr, arrow, safe=False)
    if source.name == "STRING" and target.is_temporal:
        return _temporal.parse_iso(arr, target, ctx)
    if source.is_temporal and target.is_temporal:
        return pc.cast(arr, arrow)
    if source.name == target.name and target.name in ("ARRAY", "MAP", "STRUCT"):
        return rowwise(ctx, [arr], target, lambda v: _cast_value(v, source, target))
    raise HispeedError(f"Cast of {source} to {target} is not supported")


def _parse_number(text: str, target: SqlType) -> Any:
    if target.is_integral:
        return int(text)
    if target.name == "DOUBLE":
        return float(text)
    return decimal.Decimal(text)


def _rescale(arr: pa.Array, target: SqlType, ctx: EvalContext) -> pa.Array:
    assert target.precision is not None and target.scale is not None
    scale = target.scale
    limit = decimal.Decimal(10) ** (target.precision - scale)
    quant = decimal.Decimal(1).scaleb(-scale)

    def one(v: Any) -> decimal.Decimal:
        d = decimal.Decimal(str(v)) if not isinstance(v, decimal.Decimal) else v
        q = d.quantize(quant, rounding=decimal.ROUND_HALF_UP)
        if abs(q) >= limit:
            raise ValueError(f"Numeric field overflow: {d} {_OVERFLOW} in {target}")
        return q

    return rowwise(ctx, [arr], target, one)


def _cast_value(v: Any, source: SqlType, target: SqlType) -> Any:
    """One value CAST as Java does it, for the insides of arrays, maps and structs."""
    if v is None:
        return None
    if target.name == "ARRAY":
        assert source.element is not None and target.element is not None
        return [_cast_value(x, source.element, target.element) for x in v]
    if target.name == "MAP":
        assert source.key is not None and source.element is not None
        assert target.key is not None and target.element is not None
        items = v.items() if isinstance(v, dict) else v
        return [
            (_cast_value(k, source.key, target.key), _cast_value(x, source.element, target.element))
            for k, x in items
        ]
    if target.name == "STRUCT":
        out = {}
        for name, ftype in target.fields:
            src_name = next((n for n, _ in source.fields if n.upper() == name.upper()), None)
            src_type = source.field(src_name) if src_name is not None else None
            out[name] = (
                _cast_value(v.get(src_name), src_type, ftype)
                if src_name is not None and src_type is not None
                else None
            )
        return out
    if target.name == "STRING":
        return sql_text(v, source)
    if target.name in ("INTEGER", "BIGINT"):
        n = int(v) if not isinstance(v, str) else int(v.strip())
        bits = 32 if target.name == "INTEGER" else 64
        return (n + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))  # Java narrowing
    if target.name == "DOUBLE":
        return float(v)
    if target.name == "DECIMAL":
        assert target.scale is not None
        return decimal.Decimal(str(v)).quantize(
            decimal.Decimal(1).scaleb(-target.scale), rounding=decimal.ROUND_HALF_UP
        )
    if target.name == "BOOLEAN":
        return v if isinstance(v, bool) else str(v).strip().lower() in _TRUE_PREFIXES
    return v


#: the texts ksqlDB's SqlBooleans reads as true / false, case aside: any non-empty prefix of
#: 'true' or 'yes' / of 'false' or 'no'
_TRUE_PREFIXES = sorted({w[:n] for w in ("true", "yes") for n in range(1, len(w) + 1)})
_FALSE_PREFIXES = sorted({w[:n] for w in ("false", "no") for n in range(1, len(w) + 1)})


def parse_boolean_exact(text: str) -> bool | None:
    """ksqlDB's SqlBooleans.parseBooleanExact (for literals that must be a BOOLEAN): True or
    False for a prefix of 'true'/'yes' or 'false'/'no' (trimmed, any case), else None."""
    lowered = text.strip().lower()
    if lowered in _TRUE_PREFIXES:
        return True
    if lowered in _FALSE_PREFIXES:
        return False
    return None


def _to_string(arr: pa.Array, source: SqlType, ctx: EvalContext) -> pa.Array:
    if source.name == "BOOLEAN":
        return pc.if_else(arr, "true", "false")
    if source.is_integral:
        return pc.cast(arr, pa.string())
    if source.name == "DOUBLE":
        return rowwise(ctx, [arr], T.STRING, java_double)
    if source.name == "DECIMAL":
        return rowwise(ctx, [arr], T.STRING, lambda d: format(d, "f"))
    if source.name == "BYTES":
        return rowwise(ctx, [arr], T.STRING, lambda b: base64.b64encode(b).decode())
    if source.name in ("TIMESTAMP", "DATE", "TIME"):
        return _temporal.to_iso(arr, source)
    return rowwise(ctx, [arr], T.STRING, lambda v: sql_text(v, source))


def sql_text(value: Any, t: SqlType) -> str:
    """How ksqlDB prints a value of a nested type when casting it to STRING."""
    if value is None:
        return "null"
    if t.name == "STRING":
        return str(value)
    if t.name == "BOOLEAN":
        return "true" if value else "false"
    if t.name == "DOUBLE":
        return java_double(value)
    if t.name == "DECIMAL":
        return format(value, "f")
    if t.name == "ARRAY":
        assert t.element is not None
        return "[" + ", ".join(sql_text(v, t.element) for v in value) + "]"
    if t.name == "MAP":
        assert t.element is not None and t.key is not None
        return (
            "{"
            + ", ".join(f"{sql_text(k, t.key)}={sql_text(v, t.element)}" for k, v in value)
            + "}"
        )
    if t.name == "STRUCT":
        return (
            "Struct{"
            + ",".join(
                f"{n}={sql_text(value.get(n), ft)}"
                for n, ft in t.fields
                if value.get(n) is not None
            )
            + "}"
        )
    return str(value)


def coerce(
    arr: pa.Array, source: SqlType | None, target: SqlType | None, ctx: EvalContext
) -> pa.Array:
    """Widen a value to `target` for comparing or combining (INT -> BIGINT -> DECIMAL -> DOUBLE)."""
    if target is None:
        return arr
    if source is None or pa.types.is_null(arr.type):
        return pa.nulls(len(arr), target.to_arrow())
    if source == target:
        return arr
    if source.is_numeric and target.is_numeric:
        if target.name == "DECIMAL":
            try:
                return pc.cast(arr, target.to_arrow())
            except pa.ArrowInvalid:
                return _fitting_rows(arr, target, ctx)
        if source.name == "DECIMAL" and target.name == "DOUBLE":
            return decimal_to_double(arr)
        return pc.cast(arr, target.to_arrow(), safe=False)
    if target.name == "STRING":
        return cast_array(arr, source, target, ctx)
    if source.name == "STRING" and target.is_temporal:
        return cast_array(arr, source, target, ctx)
    if source.name == "DATE" and target.name == "TIMESTAMP":
        return cast_array(arr, source, target, ctx)
    return arr


def _fitting_rows(arr: pa.Array, target: SqlType, ctx: EvalContext) -> pa.Array:
    """`arr` as DECIMAL `target` where a value fits; a value that does not (a sum past the
    precision) is NULL and a row error for the processing log, as ksqlDB reports it."""
    out: list[Any] = []
    for i in range(len(arr)):
        try:
            out.append(pc.cast(arr.slice(i, 1), target.to_arrow())[0].as_py())
        except pa.ArrowInvalid:
            ctx.error(i, f"the value {arr[i].as_py()} {_OVERFLOW} in {target}")
            out.append(None)
    return pa.array(out, target.to_arrow())


def as_type(arr: pa.Array, t: SqlType) -> pa.Array:
    """`arr`, or NULLs of type `t` if it is an untyped column of NULLs."""
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), t.to_arrow())
    return arr


def castable(source: SqlType, target: SqlType) -> bool:
    """Whether CAST from `source` to `target` is allowed."""
    if source == target or target.name == "STRING":
        return True
    if source.name == "STRING":
        return target.name not in ("ARRAY", "MAP", "STRUCT", "BYTES")
    if source.is_numeric and target.is_numeric:
        return True
    if source.is_temporal and target.is_temporal:
        return {source.name, target.name} != {"DATE", "TIME"}
    return source.name == target.name and target.name in ("ARRAY", "MAP", "STRUCT")


def cast_compiled(c: Compiled, src: SqlType, dst: SqlType) -> Compiled:
    """`c` widened from `src` to `dst` (see `coerce`)."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        return coerce(c(b, ctx), src, dst, ctx)

    return Compiled(dst, ev, c.constant)


def cast_of(c: Compiled, target: SqlType, expression: str, column: str) -> Compiled:
    """The CAST `expression` of `c` to `target` (`column`: its operand, when a column)."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        return cast_array(c(b, ctx), c.type, target, ctx, expression=expression, column=column)

    return Compiled(target, ev)
