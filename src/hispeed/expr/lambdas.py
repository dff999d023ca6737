"""Evaluators of the higher-order functions TRANSFORM, FILTER and REDUCE.

A lambda's body is compiled once, over the elements of every row's array or map at once: the
elements become columns of a batch (one row per element, beside its row's other columns).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.expr.casts import as_type, coerce
from hispeed.expr.scope import Compiled, Evaluator
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

LAMBDA_FUNCTIONS = ("TRANSFORM", "FILTER", "REDUCE")


def _elements(arr: pa.Array, is_map: bool) -> tuple[np.ndarray, list[pa.Array], np.ndarray]:
    """(offsets relative to 0, element arrays, parent row of each element) of a list/map column."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    start = offsets[0]
    offsets = offsets - start
    total = int(offsets[-1]) if len(offsets) else 0
    if is_map:
        parts = [arr.keys.slice(start, total), arr.items.slice(start, total)]
    else:
        parts = [arr.values.slice(start, total)]
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths = np.where(np.asarray(arr.is_null()), 0, lengths)
    parent = np.repeat(np.arange(len(arr)), np.diff(offsets))
    return offsets, parts, parent


def _lambda_batch(
    batch: pa.RecordBatch, parent: np.ndarray, fields: list[str], params: list[pa.Array]
) -> pa.RecordBatch:
    outer = batch.take(pa.array(parent, pa.int64())) if batch.num_columns else None
    arrays = list(outer.columns) if outer is not None else []
    names = list(outer.schema.names) if outer is not None else []
    for f, a in zip(fields, params, strict=True):
        arrays.append(a)
        names.append(f)
    if not arrays:
        return pa.RecordBatch.from_pydict({})
    return pa.RecordBatch.from_arrays(arrays, names=names)


def transform_evaluator(
    coll: Compiled, bodies: list[Compiled], fields: list[list[str]], is_map: bool, out: SqlType
) -> Evaluator:
    """TRANSFORM: each element through `bodies` (one body for an array, key and value for a map)."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, parent = _elements(arr, is_map)
        results = [
            body(_lambda_batch(b, parent, f, parts), ctx)
            for body, f in zip(bodies, fields, strict=True)
        ]
        mask = arr.is_null() if arr.null_count else None
        offs = pa.array(offsets.astype(np.int32))
        if is_map:
            keys = coerce(results[0], bodies[0].type, out.key, ctx)
            items = coerce(results[1], bodies[1].type, out.element, ctx)
            made = pa.MapArray.from_arrays(offs, keys, items, mask=mask)
            return made.cast(out.to_arrow())
        values = coerce(results[0], bodies[0].type, out.element, ctx)
        return pa.ListArray.from_arrays(offs, values, mask=mask).cast(out.to_arrow())

    return ev


def filter_evaluator(
    coll: Compiled, body: Compiled, fields: list[str], is_map: bool, t: SqlType
) -> Evaluator:
    """FILTER: the elements for which `body` is true."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, parent = _elements(arr, is_map)
        inner = _lambda_batch(b, parent, fields, parts)
        keep = np.asarray(
            pc.fill_null(as_type(body(inner, ctx), T.BOOLEAN), False).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
        kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        new_offsets = kept_before[offsets].astype(np.int32)
        mask = arr.is_null() if arr.null_count else None
        kept = [pc.filter(p, pa.array(keep)) for p in parts]
        if is_map:
            made = pa.MapArray.from_arrays(pa.array(new_offsets), kept[0], kept[1], mask=mask)
        else:
            made = pa.ListArray.from_arrays(pa.array(new_offsets), kept[0], mask=mask)
        return made.cast(t.to_arrow())

    return ev


def reduce_evaluator(
    coll: Compiled,
    init: Compiled,
    body: Compiled,
    fields: list[str],
    is_map: bool,
    state_type: SqlType,
) -> Evaluator:
    """REDUCE: `body` folds each element into the state, starting from `init`."""

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, _ = _elements(arr, is_map)
        lengths = np.diff(offsets)
        if arr.null_count:
            lengths = np.where(np.asarray(arr.is_null()), 0, lengths)
        state = coerce(init(b, ctx), init.type, state_type, ctx)
        for k in range(int(lengths.max()) if len(lengths) else 0):
            rows = np.nonzero(lengths > k)[0]
            at = pa.array(offsets[rows] + k, pa.int64())
            params = [state.take(pa.array(rows)), *(p.take(at) for p in parts)]
            inner = _lambda_batch(b, rows, fields, params)
            step = coerce(body(inner, ctx), body.type, state_type, ctx)
            values = state.to_pylist()
            for r, v in zip(rows.tolist(), step.to_pylist(), strict=True):
                values[r] = v
            state = pa.array(values, state_type.to_arrow())
        return state  # an empty or NULL collection reduces to the initial state

    return ev
