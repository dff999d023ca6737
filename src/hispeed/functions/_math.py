"""Numeric functions: ABS, ROUND, trigonometry, logarithms and friends."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_UP,
    Decimal,
    localcontext,
)
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import (
    check,
    float_values,
    from_numpy,
    null_mask,
    numeric_common,
    reject,
    rows,
)
from hispeed.sql.types import BIGINT, DOUBLE, INTEGER, SqlType, decimal

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1

# --- functions of one number giving DOUBLE ------------------------------------------------------


def _one_numeric_double(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        check(name, "(INTEGER | BIGINT | DOUBLE | DECIMAL)", arg_types, "NUMERIC")
        return DOUBLE

    return resolve


def _unary_double(name: str, fn: Callable[[Any], Any], doc: str) -> None:
    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
    ) -> pa.Array:
        x = float_values(args[0])
        with np.errstate(all="ignore"):
            out = fn(x)
        return from_numpy(out, null_mask(args[0]), DOUBLE)

    scalar(name, _one_numeric_double(name), description=doc)(evaluate)


def _cot(x: Any) -> Any:
    return 1.0 / np.tan(x)


_UNARY: list[tuple[str, Callable[[Any], Any], str]] = [
    ("ACOS", np.arccos, "Return the inverse cosine, in radians (NaN outside [-1, 1])."),
    ("ASIN", np.arcsin, "Return the inverse sine, in radians (NaN outside [-1, 1])."),
    ("ATAN", np.arctan, "Return the inverse tangent, in radians."),
    ("CBRT", np.cbrt, "Return the cube root."),
    ("COS", np.cos, "Return the cosine of an angle in radians."),
    ("COSH", np.cosh, "Return the hyperbolic cosine."),
    ("COT", _cot, "Return the cotangent of an angle in radians."),
    ("DEGREES", np.degrees, "Convert radians to degrees."),
    ("EXP", np.exp, "Return e raised to the power of the argument."),
    ("LN", np.log, "Return the natural logarithm."),
    ("RADIANS", np.radians, "Convert degrees to radians."),
    ("SIN", np.sin, "Return the sine of an angle in radians."),
    ("SINH", np.sinh, "Return the hyperbolic sine."),
    ("SQRT", np.sqrt, "Return the square root (NaN for negative numbers)."),
    ("TAN", np.tan, "Return the tangent of an angle in radians."),
    ("TANH", np.tanh, "Return the hyperbolic tangent."),
]
for _name, _fn, _doc in _UNARY:
    _unary_double(_name, _fn, _doc)


def _resolve_two_double(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        check(name, "(DOUBLE, DOUBLE) or other numbers", arg_types, "NUMERIC", "NUMERIC")
        return DOUBLE

    return resolve


@scalar("ATAN2", _resolve_two_double("ATAN2"))
def _atan2(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return the angle theta of the point (x, y) given as ATAN2(y, x), in radians."""
    out = np.arctan2(float_values(args[0]), float_values(args[1]))
    return from_numpy(out, null_mask(*args), DOUBLE)


@scalar("POWER", _resolve_two_double("POWER"))
def _power(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Raise the base to the exponent."""
    with np.errstate(all="ignore"):
        out = np.power(float_values(args[0]), float_values(args[1]))
    return from_numpy(out, null_mask(*args), DOUBLE)


def _resolve_log(arg_types: Sequence[SqlType]) -> SqlType:
    if len(arg_types) not in (1, 2) or not all(t.is_numeric for t in arg_types):
        reject("LOG", "(value) or (base, value) of numbers", arg_types)
    return DOUBLE


@scalar("LOG", _resolve_log)
def _log(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return the natural logarithm (as ksqlDB's LOG), or LOG(base, value) in the base."""
    with np.errstate(all="ignore"):
        if len(args) == 1:
            return from_numpy(np.log(float_values(args[0])), null_mask(args[0]), DOUBLE)
        base = float_values(args[0])
        out = np.log(float_values(args[1])) / np.log(base)
        out = np.where((base <= 0) | (base == 1), np.nan, out)
    return from_numpy(out, null_mask(*args), DOUBLE)


def _resolve_none(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        if arg_types:
            reject(name, "no arguments", arg_types)
        return DOUBLE

    return resolve


@scalar("PI", _resolve_none("PI"))
def _pi(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return an approximation of pi."""
    n = len(args[0]) if args else 1
    return pa.array(np.full(n, math.pi), pa.float64())


@scalar("RANDOM", _resolve_none("RANDOM"), deterministic=False)
def _random(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return a random DOUBLE in [0.0, 1.0)."""
    n = len(args[0]) if args else 1
    return pa.array(np.random.default_rng(random.getrandbits(64)).random(n), pa.float64())


# --- type-preserving functions -------------------------------------------------------------------

_ONE_NUMBER = "(INTEGER | BIGINT | DOUBLE | DECIMAL)"


def _resolve_same(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        check(name, _ONE_NUMBER, arg_types, "NUMERIC")
        return arg_types[0]

    return resolve


def _decimal_rows(
    ctx: EvalContext, name: str, arr: pa.Array, rt: SqlType, fn: Callable[[Decimal], Decimal]
) -> pa.Array:
    assert rt.precision is not None and rt.scale is not None
    limit = Decimal(10) ** (rt.precision - rt.scale)
    quantum = Decimal(1).scaleb(-rt.scale)

    def one(v: Decimal) -> Decimal:
        out = fn(v).quantize(quantum)
        if abs(out) >= limit:
            raise ValueError(f"result {out} does not fit {rt}")
        return out

    return rows(ctx, name, [arr], rt, one)


@scalar("ABS", _resolve_same("ABS"))
def _abs(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return the absolute value."""
    return pc.abs(args[0])


def _ceil_floor(name: str, np_fn: Callable[[Any], Any], mode: str, doc: str) -> None:
    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
    ) -> pa.Array:
        t = arg_types[0]
        if t.is_integral:
            return args[0]
        if t.name == "DOUBLE":
            return from_numpy(np_fn(float_values(args[0])), null_mask(args[0]), DOUBLE)
        return _decimal_rows(
            ctx, name, args[0], rt, lambda v: v.quantize(Decimal(1), rounding=mode)
        )

    scalar(name, _resolve_same(name), description=doc)(evaluate)


_ceil_floor("CEIL", np.ceil, ROUND_CEILING, "Return the smallest integer not below the argument.")
_ceil_floor("FLOOR", np.floor, ROUND_FLOOR, "Return the largest integer not above the argument.")


def _resolve_sign(arg_types: Sequence[SqlType]) -> SqlType:
    check("SIGN", _ONE_NUMBER, arg_types, "NUMERIC")
    return INTEGER


@scalar("SIGN", _resolve_sign)
def _sign(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Return -1, 0 or 1 as the argument is negative, zero or positive."""
    x = float_values(args[0])
    out = np.nan_to_num(np.sign(x), nan=0.0).astype(np.int32)
    return from_numpy(out, null_mask(args[0]), INTEGER)


# --- ROUND and TRUNC -----------------------------------------------------------------------------


def _resolve_round_like(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    accepts = f"{_ONE_NUMBER}[, INTEGER]"

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        if len(arg_types) not in (1, 2) or not arg_types[0].is_numeric:
            reject(name, accepts, arg_types)
        t = arg_types[0]
        if len(arg_types) == 2:
            if arg_types[1] != INTEGER:
                reject(name, accepts, arg_types)
            return t if t.name == "DECIMAL" else DOUBLE
        if t.name == "DECIMAL":
            assert t.precision is not None and t.scale is not None
            return decimal(max(t.precision - t.scale, 1), 0)
        return BIGINT

    return resolve


def _to_long(values: Any, mask: Any) -> pa.Array:
    """Convert whole-valued doubles to BIGINT the way Java's (long) cast does."""
    vals = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    big = values >= 2.0**63
    small = values <= -(2.0**63)
    out = np.where(big | small, 0.0, vals).astype(np.int64)
    out = np.where(big, _LONG_MAX, np.where(small, _LONG_MIN, out))
    return from_numpy(out, mask, BIGINT)


def _double_places(
    ctx: EvalContext, name: str, args: Sequence[pa.Array], pos: str, neg: str
) -> pa.Array:
    def one(v: float, places: int) -> float:
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"cannot round {v}")
        d = Decimal(repr(v))
        mode = pos if d > 0 else neg
        return float(d.quantize(Decimal(1).scaleb(-places), rounding=mode))

    return rows(ctx, name, list(args), DOUBLE, one)


def _round_half_up_decimal(places: int) -> Callable[[Decimal], Decimal]:
    def fn(v: Decimal) -> Decimal:
        mode = ROUND_HALF_UP if v > 0 else ROUND_HALF_DOWN
        return v.quantize(Decimal(1).scaleb(-places), rounding=mode)

    return fn


def _decimal_places(
    ctx: EvalContext,
    name: str,
    args: Sequence[pa.Array],
    rt: SqlType,
    op: Callable[[int], Callable[[Decimal], Decimal]],
) -> pa.Array:
    assert rt.precision is not None and rt.scale is not None
    limit = Decimal(10) ** (rt.precision - rt.scale)
    quantum = Decimal(1).scaleb(-rt.scale)

    def one(v: Decimal, places: int) -> Decimal:
        with localcontext() as exact:
            exact.prec = 80  # DECIMALs have up to 38 digits; Python's default context has 28
            out = op(places)(v).quantize(quantum)
        if abs(out) >= limit:
            raise ValueError(f"result {out} does not fit {rt}")
        return out

    return rows(ctx, name, list(args), rt, one)


@scalar("ROUND", _resolve_round_like("ROUND"))
def _round(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Round to a number of decimal places (default 0), halves rounding towards +infinity."""
    t = arg_types[0]
    if len(args) == 1:
        if t.is_integral:
            return pc.cast(args[0], pa.int64())
        if t.name == "DOUBLE":
            x = float_values(args[0])
            floor = np.floor(x)
            with np.errstate(invalid="ignore"):
                out = floor + ((x - floor) >= 0.5)
            return _to_long(out, null_mask(args[0]))
        return _decimal_rows(ctx, "ROUND", args[0], rt, _round_half_up_decimal(0))
    if t.name == "DECIMAL":
        return _decimal_places(ctx, "ROUND", args, rt, _round_half_up_decimal)
    return _double_places(
        ctx, "ROUND", [pc.cast(args[0], pa.float64()), args[1]], ROUND_HALF_UP, ROUND_HALF_DOWN
    )


def _trunc_decimal(places: int) -> Callable[[Decimal], Decimal]:
    def fn(v: Decimal) -> Decimal:
        return v.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)

    return fn


@scalar("TRUNC", _resolve_round_like("TRUNC"))
def _trunc(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    """Truncate towards zero to a number of decimal places (default 0)."""
    t = arg_types[0]
    if len(args) == 1:
        if t.is_integral:
            return pc.cast(args[0], pa.int64())
        if t.name == "DOUBLE":
            return _to_long(np.trunc(float_values(args[0])), null_mask(args[0]))
        return _decimal_rows(ctx, "TRUNC", args[0], rt, _trunc_decimal(0))
    if t.name == "DECIMAL":
        return _decimal_places(ctx, "TRUNC", args, rt, _trunc_decimal)
    return _double_places(
        ctx, "TRUNC", [pc.cast(args[0], pa.float64()), args[1]], ROUND_DOWN, ROUND_DOWN
    )


# --- GREATEST and LEAST --------------------------------------------------------------------------

_COMPARABLE = (
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
)


def _resolve_extreme(name: str) -> Callable[[Sequence[SqlType]], SqlType]:
    accepts = (
        "two or more values of one comparable type (numbers, STRING, BYTES, DATE, TIME, TIMESTAMP)"
    )

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        if len(arg_types) < 1 or not all(t.name in _COMPARABLE for t in arg_types):
            reject(name, accepts, arg_types)
        if all(t.is_numeric for t in arg_types):
            return numeric_common(name, accepts, arg_types)
        if any(t != arg_types[0] for t in arg_types):
            reject(name, accepts, arg_types)
        return arg_types[0]

    return resolve


def _extreme(name: str, kernel: Callable[..., pa.Array], doc: str) -> None:
    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
    ) -> pa.Array:
        target = rt.to_arrow()
        cols = [a if a.type == target else pc.cast(a, target) for a in args]
        if len(cols) == 1:
            return cols[0]
        if rt.name in ("STRING", "BYTES"):
            pick = max if name == "GREATEST" else min

            def one(*vals: Any) -> Any:
                present = [v for v in vals if v is not None]
                return pick(present) if present else None

            return rows(ctx, name, cols, rt, one, skip_nulls=False)
        out = kernel(*cols, skip_nulls=True)
        return out if out.type == target else pc.cast(out, target)

    scalar(name, _resolve_extreme(name), description=doc, handles_nulls=True)(evaluate)


_extreme("GREATEST", pc.max_element_wise, "Return the largest non-NULL argument.")
_extreme("LEAST", pc.min_element_wise, "Return the smallest non-NULL argument.")
