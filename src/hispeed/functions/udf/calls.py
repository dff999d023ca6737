"""How a Python function is called on a batch: its argument columns as Python values (or whole
Arrow arrays, or Polars Series, for a vectorized function), its results back into an Arrow
column, and a failing call's row NULL and sent to the processing log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.overloads import Match, call_type
from hispeed.functions.registry import EvalContext
from hispeed.functions.udf.annotations import Params
from hispeed.functions.udf.catalog import UdfError
from hispeed.sql import types as T
from hispeed.sql.types import SqlType


def has_map(t: SqlType) -> bool:
    """Whether `t` holds a MAP anywhere (its values need converting to dicts)."""
    if t.name == "MAP":
        return True
    inner = [x for x in (t.element, t.key) if x is not None] + [f for _, f in t.fields]
    return any(has_map(x) for x in inner)


def to_python(value: Any, t: SqlType) -> Any:
    """An Arrow value as Python: MAP values become dicts (Arrow gives lists of pairs)."""
    if value is None:
        return None
    if t.name == "MAP" and t.element is not None:
        pairs = value.items() if isinstance(value, dict) else value
        return {k: to_python(v, t.element) for k, v in pairs}
    if t.name == "ARRAY" and t.element is not None:
        return [to_python(v, t.element) for v in value]
    if t.name == "STRUCT":
        types = dict(t.fields)
        return {k: to_python(v, types[k]) if k in types else v for k, v in value.items()}
    return value


def _column(arr: pa.Array | pa.ChunkedArray, t: SqlType) -> list[Any]:
    values = arr.to_pylist()
    return [to_python(v, t) for v in values] if has_map(t) else values


def _arrow(ctx: EvalContext, name: str, values: list[Any], t: SqlType, rows: list[int]) -> pa.Array:
    """Python results as an Arrow column; a value that does not fit `t` is NULL and logged."""
    target = t.to_arrow()
    try:
        return pa.array(values, target)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return _arrow_by_value(ctx, name, values, t, rows)


def _arrow_by_value(
    ctx: EvalContext, name: str, values: list[Any], t: SqlType, rows: list[int]
) -> pa.Array:
    """`_arrow` one value at a time, to find the values that do not fit."""
    target = t.to_arrow()
    fixed: list[Any] = []
    for v, row in zip(values, rows, strict=True):
        try:
            pa.array([v], target)
            fixed.append(v)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            ctx.error(row, f"Function {name} returned {v!r}, which is not a {t}: {e}")
            fixed.append(None)
    return pa.array(fixed, target)


@dataclass(frozen=True)
class Call:
    """A batch's argument columns, converted to the chosen overload's parameter types."""

    arrays: list[pa.Array]
    types: list[SqlType]

    @classmethod
    def of(cls, args: Sequence[pa.Array], arg_types: Sequence[SqlType], match: Match) -> Call:
        arrays, types = [], []
        for arr, at, pt in zip(args, arg_types, match.params, strict=True):
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            want = call_type(pt, at)
            arrays.append(arr if want == at else pc.cast(arr, want.to_arrow()))
            types.append(want)
        return cls(arrays, types)

    def rows(self) -> int:
        return len(self.arrays[0]) if self.arrays else 1

    def columns(self) -> list[list[Any]]:
        """The arguments as Python values, column by column."""
        return [_column(a, t) for a, t in zip(self.arrays, self.types, strict=True)]


def _from_vector(result: Any, n: int, t: SqlType) -> pa.Array:
    """A vectorized function's result as an Arrow column of `n` rows of type `t`."""
    if hasattr(result, "to_arrow") and not isinstance(result, (pa.Array, pa.ChunkedArray)):
        result = result.to_arrow()  # a Polars Series
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    if not isinstance(result, pa.Array):
        result = pa.array(result, t.to_arrow())
    if len(result) != n:
        raise UdfError(f"returned {len(result)} values for {n} rows")
    return result if result.type == t.to_arrow() else pc.cast(result, t.to_arrow())


def to_polars(arrays: list[pa.Array]) -> list[Any]:
    """Arrow arrays as Polars Series (polars, optional, is imported only when a function asks)."""
    import polars as pl

    return [pl.Series(arr) for arr in arrays]


def failure(kind: str, name: str, exc: BaseException) -> str:
    """The processing log's text for a user function's failure."""
    return f"{kind} {name} failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Impl:
    """One overload's Python callable and how to call it."""

    fn: Callable[..., Any]
    params: Params
    vectorized: bool
    call_on_null: bool


def _skips(impl: Impl, row: Sequence[Any]) -> bool:
    """Whether a row's NULLs skip the call (parameters that do not take None)."""
    if impl.call_on_null:
        return False
    nullable = impl.params.nullable
    return any(v is None and not nullable[min(i, len(nullable) - 1)] for i, v in enumerate(row))


def row_calls(ctx: EvalContext, name: str, impl: Impl, call: Call, out: SqlType) -> pa.Array:
    """Call a scalar function row by row; a failing row is NULL and logged."""
    columns = call.columns()
    n = call.rows()
    values: list[Any] = []
    for i in range(n):
        row = [c[i] for c in columns]
        if _skips(impl, row):
            values.append(None)
            continue
        try:
            values.append(impl.fn(*row))
        except Exception as e:  # a user's function: its failure is the row's error
            ctx.error(i, failure("Function", name, e))
            values.append(None)
    return _arrow(ctx, name, values, out, list(range(n)))


def vectors(
    ctx: EvalContext, kind: str, name: str, impl: Impl, call: Call, out: SqlType
) -> pa.Array:
    """Call a vectorized function on the whole batch; if it raises, row by row, so that only
    the failing rows are NULL and logged."""
    arrays = call.arrays

    def run(cols: list[pa.Array], rows: int) -> pa.Array:
        given = to_polars(cols) if impl.params.polars else cols
        return _from_vector(impl.fn(*given), rows, out)

    try:
        return run(arrays, call.rows())
    except Exception:  # find the rows that fail: call once per row
        parts = []
        for i in range(call.rows()):
            try:
                parts.append(run([a.slice(i, 1) for a in arrays], 1))
            except Exception as e:  # a user's function: its failure is the row's error
                ctx.error(i, failure(kind, name, e))
                parts.append(pa.nulls(1, out.to_arrow()))
        return pa.concat_arrays(parts) if parts else pa.nulls(0, out.to_arrow())


def row_rows(
    ctx: EvalContext, name: str, impl: Impl, call: Call, out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    """Call a table function row by row: its values and each one's input row."""
    columns = call.columns()
    values: list[Any] = []
    parents: list[int] = []
    for i in range(call.rows()):
        row = [c[i] for c in columns]
        if _skips(impl, row):
            continue
        try:
            got = list(impl.fn(*row) or ())
        except Exception as e:  # a user's function: its failure is the row's error
            ctx.error(i, failure("Table function", name, e))
            continue
        values += got
        parents += [i] * len(got)
    return _arrow(ctx, name, values, out, parents), np.array(parents, np.int64)


def vector_rows(
    ctx: EvalContext, name: str, impl: Impl, call: Call, out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    """Call a vectorized table function: its values and each one's input row."""
    got = vectors(ctx, "Table function", name, impl, call, T.array(out))
    values = pc.list_flatten(got)
    parents = np.asarray(pc.list_parent_indices(got).to_numpy(zero_copy_only=False), np.int64)
    return values, parents
