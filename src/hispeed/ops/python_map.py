"""The Python-function operator: `.map` and `.map_batches` of the stream API (plan/python.py).

It stands between the select list and the emit operator of a stream query. `.map` calls the
function once per row with a dict of the row's key and value columns and takes the dict it
returns (None drops the row); the rows are converted to Python values column by column for
the whole batch, and the results back to Arrow columns in bulk, so what a row costs is
mostly the call itself. A row whose call raises goes to the processing log and is dropped.
`.map_batches` calls it once per batch with an Arrow RecordBatch (or a Polars DataFrame) of
the key and value columns and ROWTIME; it returns the value columns for the same rows, or,
to drop or add rows, for other rows with their key columns and ROWTIME.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice, repeat
from operator import is_, itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.errors import HispeedError
from hispeed.gc_pause import gc_paused
from hispeed.ops.base import OperatorContext
from hispeed.plan.model import QueryPlan

#: rows per call of `.map`'s inner loop: their dicts fit in the CPU's caches
_CHUNK = 2048


@dataclass
class Mapped:
    """The rows after the function: what the emit operator takes."""

    keys: list[pa.Array]
    values: list[pa.Array]
    timestamps: pa.Array
    deleted: np.ndarray
    headers: pa.Array | None


def run_python(
    plan: QueryPlan,
    keys: list[pa.Array],
    values: list[pa.Array],
    timestamps: pa.Array,
    headers: pa.Array | None,
    deleted: np.ndarray,
    context: OperatorContext,
) -> Mapped:
    """Run the plan's Python function over the rows (a stream's null values, which have no
    row to give it, are passed on as they are: dropped here, as ksqlDB drops them from a
    projection's output)."""
    stage = plan.python
    assert stage is not None
    if deleted.any():
        live = pa.array(~deleted)
        keys = [k.filter(live) for k in keys]
        values = [v.filter(live) for v in values]
        timestamps = timestamps.filter(live)
        headers = headers.filter(live) if headers is not None else None
    if stage.kind == "MAP":
        return _map(plan, keys, values, timestamps, headers, context)
    return _map_batches(plan, keys, values, timestamps, headers)


def _map(
    plan: QueryPlan,
    keys: list[pa.Array],
    values: list[pa.Array],
    timestamps: pa.Array,
    headers: pa.Array | None,
    context: OperatorContext,
) -> Mapped:
    stage = plan.python
    assert stage is not None
    fn = stage.function
    names = [c.name for c in plan.key] + [c.name for c in stage.inputs]
    n = len(timestamps)
    getters = [itemgetter(c.name) for c in plan.value]
    outputs: list[list[Any]] = [[] for _ in plan.value]
    keep: list[int] | None = None
    # a batch's rows are many small objects made at once, none of them in a cycle: the
    # cyclic collector, which their numbers set off again and again (each time walking every
    # live object of the process), would cost more than the rows themselves
    with gc_paused:
        columns = [_values(a) for a in [*keys, *values]]
        rows = zip(*columns, strict=True) if columns else iter([()] * n)
        # a chunk at a time: its dicts are freed before the next are made, so the rows
        # being worked on stay in the CPU's caches (a whole batch's would not)
        for start in range(0, n, _CHUNK):
            chunk = list(islice(rows, _CHUNK))
            try:
                results = list(map(fn, map(dict, map(zip, repeat(names), chunk))))
            except Exception:  # one row failed: call again row by row to tell which
                results = _one_by_one(plan, names, chunk, context)
            if None in results or keep is not None:
                keep = keep if keep is not None else list(range(start))
                keep += [start + i for i, r in enumerate(results) if r is not None]
                results = [r for r in results if r is not None]
            for out, getter in zip(outputs, getters, strict=True):
                try:
                    out.extend(map(getter, results))
                except (KeyError, TypeError) as e:
                    raise HispeedError(
                        f"{stage.reference} must return a dict with the value columns "
                        f"{', '.join(c.name for c in plan.value)} (or None to drop the row): "
                        f"{type(e).__name__}: {e}"
                    ) from e
    out_values = []
    given = {
        c.name: (arrow, pylist)
        for c, arrow, pylist in zip(
            [*plan.key, *stage.inputs], [*keys, *values], columns, strict=True
        )
    }
    for column, data in zip(plan.value, outputs, strict=True):
        arrow_type = column.type.to_arrow()
        same = given.get(column.name)
        if (
            keep is None
            and same is not None
            and same[0].type == arrow_type
            and not pa.types.is_nested(arrow_type)
            and all(map(is_, data, same[1]))
        ):
            # the very values it was given (a column the function passed on; immutable, as
            # a list or dict value could have been changed in place): the Arrow column they
            # came from, instead of converting them back
            out_values.append(same[0])
            continue
        try:
            out_values.append(pa.array(data, arrow_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise HispeedError(
                f"{stage.reference} returned a {column.name} that is not a {column.type}: {e}"
            ) from e
    if keep is not None:
        taken = pa.array(keep, pa.int64())
        keys = [k.take(taken) for k in keys]
        timestamps = timestamps.take(taken)
        headers = headers.take(taken) if headers is not None else None
    return Mapped(keys, out_values, timestamps, np.zeros(len(timestamps), bool), headers)


def _values(array: pa.Array) -> list[Any]:
    """An Arrow column as Python values (integers and floats without nulls through numpy,
    several times faster than Arrow's own conversion)."""
    if array.null_count == 0 and (
        pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
    ):
        return array.to_numpy().tolist()  # type: ignore[no-any-return]
    return array.to_pylist()  # type: ignore[no-any-return]


def _one_by_one(
    plan: QueryPlan,
    names: list[str],
    rows: list[tuple[Any, ...]],
    context: OperatorContext,
) -> list[Any]:
    stage = plan.python
    assert stage is not None
    results: list[Any] = []
    for row in rows:
        try:
            results.append(stage.function(dict(zip(names, row, strict=True))))
        except Exception as e:
            results.append(None)
            context.out.errors.append(
                {
                    "type": "RECORD_PROCESSING_ERROR",
                    "query": context.query_id,
                    "message": f"{stage.reference} raised {type(e).__name__}: {e}",
                    "topic": context.item.partition.topic,
                    "partition": context.partition,
                }
            )
    return results


def _map_batches(
    plan: QueryPlan,
    keys: list[pa.Array],
    values: list[pa.Array],
    timestamps: pa.Array,
    headers: pa.Array | None,
) -> Mapped:
    stage = plan.python
    assert stage is not None
    key_names = [c.name for c in plan.key]
    names = [*key_names, *(c.name for c in stage.inputs), "ROWTIME"]
    batch = pa.RecordBatch.from_arrays([*keys, *values, timestamps], names=names)
    given: Any = batch
    if stage.kind == "MAP_POLARS":
        import polars as pl

        given = pl.from_arrow(batch)
    got = stage.function(given)
    table = _as_arrow(got, stage.reference)
    n = table.num_rows
    if n != batch.num_rows or not all(k in table.column_names for k in key_names):
        # other rows than it was given: their keys and times must come with them
        missing = [k for k in [*key_names, "ROWTIME"] if k not in table.column_names]
        if n != batch.num_rows and missing:
            raise HispeedError(
                f"{stage.reference} returned {n} rows for {batch.num_rows}: rows it drops or "
                f"adds need their key columns and ROWTIME, and it has no {', '.join(missing)}"
            )
    out_keys = keys
    if n != batch.num_rows:
        out_keys = [_column(table, c.name, c.type.to_arrow(), stage.reference) for c in plan.key]
        timestamps = _column(table, "ROWTIME", pa.int64(), stage.reference)
        headers = None  # the input rows' headers belong to the rows given
    out_values = [_column(table, c.name, c.type.to_arrow(), stage.reference) for c in plan.value]
    return Mapped(out_keys, out_values, timestamps, np.zeros(n, bool), headers)


def _as_arrow(got: Any, reference: str) -> pa.Table:
    if isinstance(got, pa.RecordBatch):
        return pa.Table.from_batches([got])
    if isinstance(got, pa.Table):
        return got
    to_arrow = getattr(got, "to_arrow", None)  # a Polars DataFrame
    if callable(to_arrow):
        table = to_arrow()
        if isinstance(table, pa.Table):
            return table
    raise HispeedError(
        f"{reference} must return an Arrow RecordBatch or Table, or a Polars DataFrame, not "
        f"{type(got).__name__}"
    )


def _column(table: pa.Table, name: str, arrow: pa.DataType, reference: str) -> pa.Array:
    if name not in table.column_names:
        raise HispeedError(f"{reference} returned no column {name}")
    column = table.column(name).combine_chunks()
    if column.type == arrow:
        return column
    try:
        return column.cast(arrow)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise HispeedError(
            f"{reference} returned {name} as {column.type}, which is not a {arrow}: {e}"
        ) from e
