"""The LAG operator: fills each `LAG(value, offset, default) OVER (PARTITION BY p ORDER BY
time)` column of a stream query's frame before its select list is computed (plan/lag.py),
and each aggregate over a ROWS or RANGE frame of the same OVER (ops/over_frames.py).

Rows are taken in event-time order across the stream's input partitions, each once the
watermark reaches it (ops/over_order.py; with one input partition, as it arrives). Each
partition keeps the time of its last row and the last `offset` values of each call, so a
row's LAG is known when it is taken. A row older than its partition's last row (it came after
the watermark had passed it) cannot be placed without rewriting what was already sent, so,
as Flink drops a row its event-time OVER window has passed, it is dropped and a
processing-log entry says so. Rows that fail WHERE (which SQL applies before window
functions) and null values leave the state as it is.

The state is the operator's `PickledStores`, written to the query's changelog with each
batch in the transaction that commits its outputs, and restored from it at a restart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext
from hispeed.ops.over_frames import initial, step
from hispeed.ops.over_order import WAITING, EventTimeOrder
from hispeed.plan.model import QueryPlan, field_name
from hispeed.state.stores import ChangelogChanges, PickledStores

#: the store kind: partition -> (time of its last row, each call's last values)
KIND = "LG"
#: the operator's store kinds: its partitions' and the rows waiting for the watermark
KINDS = (KIND, WAITING)


class Lag:
    """Computes a plan's LAG columns over a query task's batches (see the module)."""

    def __init__(self, plan: QueryPlan) -> None:
        self.plan = plan
        self.calls = plan.lags
        self.stores = PickledStores(KINDS)
        #: the rows in event-time order across the input partitions (ops/over_order.py)
        self.order = EventTimeOrder(plan.label, self.stores)

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's store."""
        self.stores.restore(name, value)

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """The frame's rows that are final, with those before that waited, in event-time
        order, with the LAG columns added (and late rows taken out)."""
        frame, tombstones = self.order.take(frame, tombstones, context)
        if frame.num_rows == 0:
            return frame, tombstones
        plan = self.plan
        ctx = EvalContext()
        n = frame.num_rows
        live = ~np.asarray(tombstones, bool)
        if plan.where is not None:
            live &= np.asarray(pc.fill_null(plan.where(frame, ctx), False), bool)
        first = self.calls[0]
        parts = [c(frame, ctx).to_pylist() for c in first.partition]
        partitions: list[Any] = (
            parts[0] if len(parts) == 1 else list(zip(*parts, strict=True)) if parts else [()] * n
        )
        # COUNT(*) counts every row: a value that is never null stands for each
        values = [
            c.value(frame, ctx).to_pylist() if c.value is not None else [1] * n for c in self.calls
        ]
        defaults = [
            c.default(frame, ctx).to_pylist() if c.default is not None else [None] * n
            for c in self.calls
        ]
        stamps = frame.column(field_name(plan.label, "ROWTIME")).to_pylist()
        offsets = [c.offset for c in self.calls]
        framed = [c.function not in ("LAG", "LEAD") for c in self.calls]
        leads = [c.function == "LEAD" for c in self.calls]
        fresh = [initial(c) if f else [] for c, f in zip(self.calls, framed, strict=True)]
        out: list[list[Any]] = [[None] * n for _ in self.calls]
        late = np.zeros(n, bool)
        store = self.stores[KIND]
        for i in range(n):
            if not live[i]:
                continue
            p, ts = partitions[i], stamps[i]
            state = store.get(p)
            if state is not None and ts is not None and ts < state[0]:
                late[i] = True
                continue
            kept = state[1] if state is not None else fresh
            updated: list[Any] = []
            for j, offset in enumerate(offsets):
                before = kept[j]
                if leads[j]:  # filled as the partition's later rows come (_hold)
                    updated.append(None)
                    continue
                if framed[j]:
                    out[j][i], after = step(self.calls[j], before, values[j][i], ts)
                    updated.append(after)
                    continue
                out[j][i] = before[-offset] if len(before) >= offset else defaults[j][i]
                updated.append(
                    [*before[-offset + 1 :], values[j][i]] if offset > 1 else [values[j][i]]
                )
            last = ts if ts is not None else (state[0] if state is not None else None)
            held = state[2] if state is not None and len(state) > 2 else []
            store.put(p, (last, updated, held))
        context.report(ctx, frame, plan.label)
        for call, data in zip(self.calls, out, strict=True):
            frame = frame.append_column(call.field, pa.array(data, call.type.to_arrow()))
        if late.any():
            self._report_late(frame, late, context)
        if any(leads):
            held = self._hold(frame, live & ~late, partitions, values)
            return held, np.zeros(held.num_rows, bool)
        if late.any():
            keep = pa.array(~late)
            frame = frame.filter(keep)
            tombstones = np.asarray(tombstones, bool)[~late]
        return frame, tombstones

    def _hold(
        self, frame: pa.RecordBatch, live: np.ndarray, partitions: list[Any], values: list[Any]
    ) -> pa.RecordBatch:
        """LEAD: each row waits in its partition until the row `offset` after it arrives (the
        largest offset of the query's LEAD calls); the rows completed by this batch's rows,
        from this batch or earlier ones, are the frame the select list runs over."""
        store = self.stores[KIND]
        calls = self.calls
        wait = max(c.offset for c in calls if c.function == "LEAD")
        fills = [(j, c.offset, c.field) for j, c in enumerate(calls) if c.function == "LEAD"]
        rows = frame.to_pylist()
        done: list[dict[str, Any]] = []
        for i in np.flatnonzero(live).tolist():
            p = partitions[i]
            state = store.get(p)
            assert state is not None  # the row's pass in `process` put it
            last, kept, held = state
            for at, row in enumerate(held):
                distance = len(held) - at
                for j, offset, field in fills:
                    if offset == distance:
                        row[field] = values[j][i]
            if len(held) == wait:
                done.append(held.pop(0))
            held.append(rows[i])
            store.put(p, (last, kept, held))
        return pa.RecordBatch.from_pylist(done, schema=frame.schema)

    def _report_late(
        self, frame: pa.RecordBatch, late: np.ndarray, context: OperatorContext
    ) -> None:
        offsets = frame.column(field_name(self.plan.label, "ROWOFFSET")).to_pylist()
        # the rows released together may come from several input partitions
        partitions = frame.column(field_name(self.plan.label, "ROWPARTITION")).to_pylist()
        item = context.item
        for i in np.flatnonzero(late).tolist():
            context.out.errors.append(
                {
                    "type": "RECORD_PROCESSING_ERROR",
                    "query": context.query_id,
                    "message": f"{self.calls[0].function} OVER: a row older than the last "
                    "row of its PARTITION BY partition (out of order) was dropped",
                    "topic": item.partition.topic,
                    "partition": partitions[i],
                    "offset": offsets[i],
                }
            )
