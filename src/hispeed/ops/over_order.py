"""Event-time order across a stream's input partitions, for LAG, LEAD and the aggregates over
a ROWS or RANGE frame (ops/lag.py), as Flink's event-time OVER takes its rows.

A query task reads its input one partition at a time, so the rows of one PARTITION BY group
come from several input partitions, a batch of each in turn: taken as they come, a group's
row of partition 1 would follow a later row of partition 0 and look out of order. So a row
waits until it is final: when the watermark reaches its time, the watermark being the least
over the input partitions of each partition's newest event time (Flink's source watermark,
without delay). The rows that become final are released in order of their time (rows of
one time in the order they came); a row that comes with a time the watermark has already
passed is released at once, behind those released before it.

Record by record, as Flink's: each record raises its partition's newest time, then the rows
it makes final are released. With one input partition the watermark is that partition's
newest time, so every row is final as it comes and is taken at once, in the order it came:
no row waits, whatever the batches.

The watermark is the window table functions' (ops/watermark.py): an input partition that
has read nothing holds it back, until it has had nothing to read for the idle timeout
(`table.exec.source.idle-timeout`).

The waiting rows are the operator's store `WAITING` (one entry: the rows as a record batch
and which of them are tombstones), and the partitions' newest times and the watermark are
the query's stream time (the watermark under ops/watermark.py's `LEVEL`): both are written
to the query's changelog in the transaction that commits the batch's outputs and input
offsets, so a restart neither loses a waiting row nor sends one twice.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.ops.base import OperatorContext
from hispeed.ops.watermark import NEVER, BatchClock
from hispeed.plan.model import field_name
from hispeed.state.changelog import write_stream_time
from hispeed.state.stores import PickledStores

#: the store kind of the rows that wait for the watermark
WAITING = "LW"


class EventTimeOrder:
    """Releases a stream's rows in event-time order across its input partitions (see the
    module)."""

    def __init__(self, label: str, stores: PickledStores) -> None:
        self.stamp_field = field_name(label, "ROWTIME")
        self.stores = stores

    def take(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """The rows that `frame` (a batch of one input partition) makes final, with those
        waiting before, in the order to compute them; the others wait."""
        times = context.stream_time
        n = frame.num_rows
        stamps = _stamps(frame.column(self.stamp_field))
        # the watermark after each record (ops/watermark.py)
        clock = BatchClock(times, context.partition, context.idle, watermark=True)
        marks = clock.rows(stamps)
        if n:
            clock.done(int(marks[-1]))
            write_stream_time(context.out.changelog, times)
        store = self.stores[WAITING]
        waiting = store.get(0)
        tombstones = np.asarray(tombstones, bool)
        if waiting is None and bool((marks >= stamps).all()):
            return frame, tombstones  # each row final as it comes (one input partition)
        if waiting is not None:
            kept, kept_tombstones = waiting
            frame = pa.concat_batches([kept, frame])
            tombstones = np.concatenate([kept_tombstones, tombstones])
            stamps = np.concatenate([_stamps(kept.column(self.stamp_field)), stamps])
            came = np.concatenate([np.zeros(kept.num_rows, np.int64), np.arange(n)])
        else:
            came = np.arange(n)
        # the record whose time makes each row final: not before the row itself came
        final = np.maximum(came, np.searchsorted(marks, stamps, "left"))
        ready = final < n
        order = np.lexsort((np.arange(len(stamps)), stamps, final))
        order = order[ready[order]]
        if bool(ready.all()):
            if waiting is not None:
                store.delete(0)
        else:
            rest = np.flatnonzero(~ready)
            store.put(0, (frame.take(pa.array(rest)), tombstones[rest]))
        return frame.take(pa.array(order)), tombstones[order]


def _stamps(column: pa.Array) -> np.ndarray:
    """Row times as int64 (a row without one is final at once)."""
    return np.asarray(pc.fill_null(column.cast(pa.int64()), NEVER).to_numpy(), np.int64)
