"""A table's rows by key from the state of the query that writes it, for pull queries.

A pull query's key lookup against a table that a GROUP BY without a window writes need not
read the table's topic into a second copy in memory (seconds and hundreds of megabytes at a
million keys): the query's own state holds every key's aggregates, and the table's row is what
the query's select list and HAVING make of them, as the last output of that key was. So
`table_rows` finds the keys' slots in the query's `KeyedStateStore`, computes the select list
over their states (as `FastPath.emit` does for a batch's changes) and returns the rows in the
form `runtime/pull.py`'s `TableView` keeps them. It answers None, and the view reads the topic
as before, for any other query shape or state (a windowed table, a sink timestamp column, the
states held in the reference path's form while a batch needed it, a query split across
workers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.ops.aggregate_kernels import Kernel
from hispeed.runtime.task import QueryTask
from hispeed.state.keyed import KeyedStateStore


def table_rows(
    task: QueryTask, names: list[str], keys: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]] | None:
    """The current rows of these keys of the table `task` writes, each a tuple of the
    columns `names` (the table's columns and ROWTIME) followed by None for the raw key bytes
    (a lookup does not read them); None if the task's state cannot answer."""
    aggregator = task.aggregator
    plan = task.plan
    agg = plan.aggregation
    if aggregator is None or agg is None or agg.window is not None or task.unit is not None:
        return None
    store = aggregator.store
    if not isinstance(store, KeyedStateStore) or aggregator.in_dict:
        return None
    if task.sink.timestamp is not None or len(plan.key) != len(agg.group_columns):
        return None
    if not keys:
        return []
    distinct = list(dict.fromkeys(keys))
    try:
        columns = [pa.array([k[i] for k in distinct], t) for i, t in enumerate(store.key_types)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    held, states = store.lookup(columns)
    if not held.any():
        return []
    held_keys = {k for k, h in zip(distinct, held.tolist(), strict=True) if h}
    picked = pa.array(np.flatnonzero(held))
    arrays = [c.take(picked) for c in columns]
    fields = [c.field for c in agg.group_columns]
    k = 0
    for call, kernel in zip(agg.state_calls, store.layouts, strict=True):
        assert isinstance(kernel, Kernel)
        width = len(kernel.dtypes)
        arrays.append(kernel.result(states[k : k + width]))
        fields.append(call.column.field)
        k += width
    post = _typed(pa.RecordBatch.from_arrays(arrays, names=fields), agg.group_columns)
    ctx = EvalContext()
    if plan.having is not None:
        post = post.filter(pc.fill_null(plan.having(post, ctx), False))
    by_name: dict[str, list[Any]] = {}
    for column in [*plan.key, *plan.value]:
        by_name[column.name] = column.expr(post, ctx).to_pylist()
    # a row's time is its key's newest record time: the last state call's result
    by_name["ROWTIME"] = post.column(len(fields) - 1).cast(pa.int64()).to_pylist()
    if any(name not in by_name for name in names):
        return None
    rows = [(*row, None) for row in zip(*(by_name[n] for n in names), strict=True)]
    # the key columns as the select list computes them must be the keys asked for
    at = [names.index(c.name) for c in plan.key]
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        key = tuple(row[i] for i in at)
        if key not in held_keys:
            return None
        found[key] = row
    return [found[k] for k in keys if k in found]


def _typed(post: pa.RecordBatch, group_columns: list[Any]) -> pa.RecordBatch:
    """The group columns in their SQL types (the store keeps them normalized)."""
    arrays = list(post.columns)
    for i, column in enumerate(group_columns):
        arrow = column.type.to_arrow()
        if arrays[i].type != arrow:
            arrays[i] = arrays[i].cast(arrow)
    return pa.RecordBatch.from_arrays(arrays, names=post.schema.names)


__all__ = ["table_rows"]
