"""Shared helpers for the built-in functions: argument checks, coercion and array plumbing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext, FunctionTypeError, rowwise
from hispeed.sql.javatext import java_double
from hispeed.sql.types import (
    DOUBLE,
    SqlType,
    widest_numeric,
)

_ORDER = {"INTEGER": 0, "BIGINT": 1, "DECIMAL": 2, "DOUBLE": 3}


def describe(arg_types: Sequence[SqlType]) -> str:
    """Render argument types as `(A, B)` for error messages."""
    return "(" + ", ".join(str(t) for t in arg_types) + ")"


def reject(name: str, accepts: str, arg_types: Sequence[SqlType]) -> NoReturn:
    """Raise the standard FunctionTypeError for `name`."""
    raise FunctionTypeError(f"{name} takes {accepts}, not {describe(arg_types)}")


def widens_to(src: SqlType, dst: SqlType) -> bool:
    """Tell whether `src` implicitly converts to `dst` (INTEGER < BIGINT < DECIMAL < DOUBLE)."""
    if src == dst:
        return True
    if src.name == dst.name and src.name != "DECIMAL":
        return True
    if src.name in _ORDER and dst.name in _ORDER:
        if dst.name == "DECIMAL" and src.name == "DECIMAL":
            assert src.precision is not None and src.scale is not None
            assert dst.precision is not None and dst.scale is not None
            return src.scale <= dst.scale and src.precision - src.scale <= dst.precision - dst.scale
        return _ORDER[src.name] < _ORDER[dst.name]
    return False


def is_name(t: SqlType, *names: str) -> bool:
    return t.name in names


def numeric_common(name: str, accepts: str, arg_types: Sequence[SqlType]) -> SqlType:
    """The widest numeric type of the arguments, or reject when one is not numeric."""
    if not arg_types or not all(t.is_numeric for t in arg_types):
        reject(name, accepts, arg_types)
    out = arg_types[0]
    for t in arg_types[1:]:
        out = widest_numeric(out, t)
    return out


def common_type(name: str, accepts: str, arg_types: Sequence[SqlType]) -> SqlType:
    """One type all arguments convert to (numerics widen), or reject."""
    if not arg_types:
        reject(name, accepts, arg_types)
    if all(t.is_numeric for t in arg_types):
        return numeric_common(name, accepts, arg_types)
    first = arg_types[0]
    if any(t != first for t in arg_types[1:]):
        reject(name, accepts, arg_types)
    return first


def check(name: str, accepts: str, arg_types: Sequence[SqlType], *params: SqlType | str) -> None:
    """Reject unless each argument converts to the matching parameter.

    A parameter is a SqlType, or a string naming a type family: "NUMERIC", "ANY", "DECIMAL",
    "ARRAY", "MAP", "STRUCT", or "INTEGRAL" (INTEGER or BIGINT).
    """
    if len(arg_types) != len(params):
        reject(name, accepts, arg_types)
    for t, p in zip(arg_types, params, strict=True):
        if isinstance(p, SqlType):
            ok = widens_to(t, p)
        elif p == "NUMERIC":
            ok = t.is_numeric
        elif p == "INTEGRAL":
            ok = t.is_integral
        elif p == "ANY":
            ok = True
        else:
            ok = t.name == p
        if not ok:
            reject(name, accepts, arg_types)


def cast(arr: pa.Array, to: SqlType) -> pa.Array:
    """Convert an argument column to the parameter type it was accepted as."""
    target = to.to_arrow()
    if arr.type == target:
        return arr
    if pa.types.is_decimal(arr.type) and pa.types.is_float64(target):
        return decimal_to_double(arr)
    if pa.types.is_integer(arr.type) and pa.types.is_floating(target):
        # to the nearest double, as Java widens a long; Arrow's safe cast refuses integers
        # past 2**53 (a BIGINT such as -9223372036854775808 failed the query)
        return pc.cast(arr, target, safe=False)
    return pc.cast(arr, target)


def decimal_to_double(arr: pa.Array) -> pa.Array:
    """DECIMAL values as the nearest doubles, as Java's BigDecimal.doubleValue() gives them
    (Arrow's own cast divides in floating point: 11.1 became 11.100000000000001)."""
    return pc.cast(pc.cast(arr, pa.string()), pa.float64())


def as_double(arr: pa.Array) -> pa.Array:
    return cast(arr, DOUBLE)


def float_values(arr: pa.Array) -> Any:
    """A float64 numpy copy of a numeric column (NULL rows hold NaN)."""
    return np.asarray(as_double(arr).to_numpy(zero_copy_only=False), dtype=np.float64)


def null_mask(*arrs: pa.Array) -> Any:
    """A numpy bool mask of rows where any of `arrs` is NULL."""
    n = len(arrs[0]) if arrs else 0
    mask = np.zeros(n, dtype=bool)
    for a in arrs:
        if a.null_count:
            mask |= np.asarray(a.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return mask


def from_numpy(values: Any, mask: Any, to: SqlType) -> pa.Array:
    """Build the result column from numpy values with NULL where `mask`."""
    return pa.array(values, type=to.to_arrow(), mask=mask if mask.any() else None)


def constant(arr: pa.Array) -> tuple[bool, Any]:
    """(True, value) when every row of `arr` holds the same value (or NULL), else (False, None)."""
    if len(arr) == 0:
        return True, None
    if arr.null_count == len(arr):
        return True, None
    uniq = pc.unique(arr.drop_null()) if arr.null_count else pc.unique(arr)
    if len(uniq) == 1:
        return True, uniq[0].as_py()
    return False, None


def null_array(n: int, to: SqlType) -> pa.Array:
    return pa.nulls(n, type=to.to_arrow())


def mask_nulls(result: pa.Array, *arrs: pa.Array) -> pa.Array:
    """NULL out rows of `result` where any of `arrs` is NULL."""
    mask = null_mask(*arrs)
    if not mask.any():
        return result
    return pc.if_else(pa.array(mask), pa.nulls(len(result), result.type), result)


def rows(
    ctx: EvalContext,
    name: str,
    args: Sequence[pa.Array],
    return_type: SqlType,
    fn: Callable[..., Any],
    *,
    skip_nulls: bool = True,
) -> pa.Array:
    """Apply `fn` row by row, reporting a row's failure as `NAME: message` and giving NULL."""
    return rowwise(ctx, args, return_type, fn, skip_nulls=skip_nulls, label=name)


def java_string(value: Any) -> str:
    """Format a primitive Python value like Java's toString (booleans, doubles, decimals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return str(value)
