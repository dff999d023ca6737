"""The explode operator: table functions (EXPLODE and the like) in the select list.

Each row is repeated as many times as its table functions give values, zipped as ksqlDB zips
them: the longest wins, the others are padded with NULL.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hispeed.functions.registry import EvalContext
from hispeed.plan.model import QueryPlan


def explode(
    plan: QueryPlan, frame: pa.RecordBatch, deleted: pa.Array, ctx: EvalContext
) -> tuple[pa.RecordBatch, pa.Array]:
    """Each row as many times as its table functions give values (zipped: the longest wins,
    the others padded with NULL), with each function's values as a column `$tN`."""
    n = frame.num_rows
    outputs = []
    counts = np.zeros(n, np.int64)
    for call in plan.table_functions:
        args = [a(frame, ctx) for a in call.args]
        values, parents = call.function.evaluate(ctx, args, list(call.arg_types), call.type)
        per_row = np.bincount(parents, minlength=n).astype(np.int64)
        outputs.append((values, per_row))
        counts = np.maximum(counts, per_row)
    rows = np.repeat(np.arange(n), counts)
    # the position of each output row within its input row's run
    starts = np.cumsum(counts) - counts
    position = np.arange(len(rows)) - np.repeat(starts, counts)
    taken = pa.array(rows)
    arrays = [c.take(taken) for c in frame.columns]
    names = list(frame.schema.names)
    for call, (values, per_row) in zip(plan.table_functions, outputs, strict=True):
        first = np.cumsum(per_row) - per_row  # where each row's values start
        have = position < per_row[rows]
        index = pa.array(np.where(have, first[rows] + position, 0), mask=~have)
        arrays.append(values.take(index) if len(values) else pa.nulls(len(rows), values.type))
        names.append(call.field)
    return pa.RecordBatch.from_arrays(arrays, names=names), deleted.take(taken)
