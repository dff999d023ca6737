"""SESSION's rows without aggregation, as Flink's: `SELECT * FROM TABLE(SESSION(TABLE s
PARTITION BY k, DESCRIPTOR(t), gap))` gives each row its session's window_start,
window_end and window_time, known only once the session closes.

Each PARTITION BY key (the whole stream without one) keeps its open sessions: a row joins
the sessions it is less than the gap from (Flink's: the row's window `[t, t + gap)` merges
with every session window it overlaps), merging them, and the session ends a gap after its
last row. When the watermark reaches a session's end, its rows go on to the select list
(ops/project.py), each with the session's start and end in the plan's `SESSION_START` and
`SESSION_END` columns, sessions in the order of their end, a session's rows in the order
they came. A row whose session (after merging) had ended when it came is late and dropped,
as the session window aggregation drops one (Flink drops it too). Sessions close on the
watermark, the least of the input partitions' newest row times (ops/watermark.py), as the
other window operators' windows do.

The open sessions (their rows as Python values) are the operator's `PickledStores`, written
to the query's changelog with the batch's outputs and stream time in one transaction, and
restored from it at a restart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext
from hispeed.ops.watermark import LEVEL, BatchClock
from hispeed.plan.model import SESSION_END, SESSION_START, QueryPlan, field_name
from hispeed.state.changelog import write_stream_time
from hispeed.state.stores import ChangelogChanges, PickledStores

#: the store kinds: each partition's open sessions, [start, last row time, [rows]], and the
#: arrival counter that orders a session's rows
KIND, SEQUENCE = "SN", "SQ"


def merge_session(
    sessions: list[list[Any]], ts: int, then: int, gap: int, entry: tuple[Any, ...]
) -> list[list[Any]] | None:
    """`sessions` ([start, last row time, [entries in arrival order]]) with a row at `ts`
    (its `entry`, whose first item is its arrival number) merged in: with every open session
    its window `[ts, ts + gap)` overlaps (one that ended at `then`, the stream time when the
    row came, is closed, though output only at the batch's end). None if the row's session
    had ended at `then`: late."""
    near = [s for s in sessions if s[0] - gap < ts < s[1] + gap and s[1] + gap > then]
    first = min([ts, *(s[0] for s in near)])
    last = max([ts, *(s[1] for s in near)])
    if last + gap <= then:
        return None
    held = sorted([e for s in near for e in s[2]] + [entry], key=lambda e: e[0])
    kept = [s for s in sessions if not any(s is n for n in near)]
    return [*kept, [first, last, held]]


class SessionRows:
    """Holds a stream's rows until their SESSION closes (see the module)."""

    def __init__(self, plan: QueryPlan) -> None:
        assert plan.session_rows is not None
        self.plan = plan
        self.gap = plan.session_rows.gap_ms
        self.partition = plan.session_rows.partition
        self.stores = PickledStores([KIND, SEQUENCE])

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """Put a batch's rows in their sessions; the rows of the sessions it closes, with
        their session's bounds (no tombstones: a stream's null value is no row)."""
        label = self.plan.label
        times = context.stream_time
        stamps = frame.column(field_name(label, "ROWTIME")).to_numpy(zero_copy_only=False)
        # the watermark before each row (ops/watermark.py), as the other window operators'
        clock = BatchClock(times, context.partition, context.idle, watermark=True)
        was = (times.get(context.partition), times.get(LEVEL))
        seen = np.concatenate([[clock.seed], clock.rows(stamps)])
        before, now = seen[:-1].tolist(), int(seen[-1])
        live = ~np.asarray(tombstones, bool)
        ctx = EvalContext()
        keys = [c(frame, ctx).to_pylist() for c in self.partition]
        context.report(ctx, frame, label)
        rows = frame.to_pylist()
        for i in np.flatnonzero(live).tolist():
            partition = tuple(k[i] for k in keys)
            self._add(partition, int(stamps[i]), rows[i], before[i])
        now = clock.done(now)
        if (times.get(context.partition), times.get(LEVEL)) != was:
            write_stream_time(context.out.changelog, times)
        closed = self._close(now)
        schema = frame.schema.append(pa.field(field_name(label, SESSION_START), pa.int64()))
        schema = schema.append(pa.field(field_name(label, SESSION_END), pa.int64()))
        out = pa.RecordBatch.from_pylist(closed, schema=schema)
        return out, np.zeros(out.num_rows, bool)

    def _add(self, partition: tuple[Any, ...], ts: int, row: dict[str, Any], then: int) -> None:
        """Merge the row into its partition's sessions, unless its session had ended at
        `then` (the stream time when it came): late."""
        store = self.stores[KIND]
        sequence = int(self.stores[SEQUENCE].get("next", 0))
        merged = merge_session(store.get(partition) or [], ts, then, self.gap, (sequence, row))
        if merged is None:
            return  # the session had closed: a late row
        self.stores[SEQUENCE].put("next", sequence + 1)
        store.put(partition, merged)

    def _close(self, now: int) -> list[dict[str, Any]]:
        """The rows of every session stream time has reached the end of, taken out."""
        label = self.plan.label
        store = self.stores[KIND]
        gap = self.gap
        closing: list[tuple[int, int, int, dict[str, Any]]] = []
        for partition in list(store):
            sessions = store.get(partition) or []
            ended = [s for s in sessions if s[1] + gap <= now]
            if not ended:
                continue
            rest = [s for s in sessions if s[1] + gap > now]
            if rest:
                store.put(partition, rest)
            else:
                store.delete(partition)
            closing += [(s[1] + gap, s[0], seq, row) for s in ended for seq, row in s[2]]
        closing.sort(key=lambda c: (c[0], c[1], c[2]))
        return [
            {**row, field_name(label, SESSION_START): first, field_name(label, SESSION_END): end}
            for end, first, _, row in closing
        ]
