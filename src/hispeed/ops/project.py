"""The filter-and-project operator: WHERE and the select list of a query without GROUP BY.

A stream's rows that fail WHERE are dropped; a table's rows that fail it delete their key
downstream (for a table join, only when the key's last row was sent). Table functions explode
the rows (ops/explode.py); the key and value columns then go to the emit operator.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext
from hispeed.ops.decode import frame_headers
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.explode import explode
from hispeed.ops.join import JoinRuntime
from hispeed.ops.python_map import run_python
from hispeed.ops.stateful import StatefulProcessor
from hispeed.plan.model import QueryPlan, field_name


class Project:
    """WHERE, table functions and the select list over each batch, stateless (but for a
    table join's record of which keys were sent, which the join keeps)."""

    def __init__(
        self,
        plan: QueryPlan,
        sink: Source,
        emitter: SinkEncoder,
        join: JoinRuntime | None,
        processor: StatefulProcessor | None = None,
    ) -> None:
        self.plan = plan
        self.source = plan.source
        self.sink = sink
        self.emitter = emitter
        self.join = join
        #: the `.process` function's runtime, with its state (the task checkpoints it)
        self.processor = processor

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Filter and project a batch; the rows go to the emit operator."""
        plan = self.plan
        ctx = EvalContext()
        deleted = pa.array(tombstones)
        if plan.where is not None:
            mask = pc.fill_null(plan.where(frame, ctx), False)
            if self.source.kind == "STREAM" and tombstones.any():
                mask = pc.and_(mask, pa.array(~tombstones))  # a null value matches nothing
            if self.source.kind == "TABLE" and self.join is not None:
                # a joined row that does not match deletes its key only if it was sent
                frame, deleted = self.join.filter_table(frame, mask, deleted)
            elif self.source.kind == "TABLE":
                # a table row that stops matching is deleted downstream
                deleted = pc.or_(deleted, pc.invert(mask))
            else:
                frame = frame.filter(mask)
                deleted = deleted.filter(mask)
        if frame.num_rows == 0:
            return
        if plan.table_functions:
            frame, deleted = explode(plan, frame, deleted, ctx)
            if frame.num_rows == 0:
                context.report(ctx, frame, plan.label)
                return
        keys = [c.expr(frame, ctx) for c in plan.key]
        if plan.value_keys and pc.any(deleted).as_py():
            # a null value passed on by PARTITION BY: a key read from the value is null
            for i in plan.value_keys:
                keys[i] = pc.if_else(deleted, pa.nulls(len(keys[i]), keys[i].type), keys[i])
        if plan.python is not None:
            # the select list's columns go to a Python function, whose columns are written
            values = [c.expr(frame, ctx) for c in plan.python.inputs]
            context.report(ctx, frame, plan.label)
            if self.processor is not None:
                live = pa.array(~np.asarray(deleted))  # a null value has no record to give
                mapped = self.processor.process(
                    [k.filter(live) for k in keys],
                    [v.filter(live) for v in values],
                    frame.column(field_name(plan.label, "ROWTIME")).filter(live),
                    frame.column(field_name(plan.label, "ROWOFFSET")).filter(live),
                    context,
                )
            else:
                mapped = run_python(
                    plan,
                    keys,
                    values,
                    frame.column(field_name(plan.label, "ROWTIME")),
                    frame_headers(frame, plan.label),
                    np.asarray(deleted),
                    context,
                )
            if len(mapped.timestamps):
                self.emitter.emit(
                    mapped.keys,
                    mapped.values,
                    mapped.timestamps,
                    mapped.deleted,
                    context.out,
                    headers=mapped.headers,
                )
            return
        values = [c.expr(frame, ctx) for c in plan.value]
        context.report(ctx, frame, plan.label)
        ts = frame.column(field_name(plan.label, "ROWTIME"))
        self.emitter.emit(
            keys,
            values,
            ts,
            np.asarray(deleted),
            context.out,
            window=(
                frame.column(field_name(plan.label, "WINDOWSTART")),
                frame.column(field_name(plan.label, "WINDOWEND")),
            )
            if self.source.window is not None and self.sink.window is not None
            else None,
            headers=frame_headers(frame, plan.label),
        )
