"""Aggregates over a window frame of a table's rows: `SELECT id, seller, AVG(price) OVER
(PARTITION BY seller ORDER BY expires ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS avg_price
FROM winning_bids` where winning_bids is a table (plan/lag.py plans it; Nexmark q6).

The result is a table keyed as its input: each input row's value is the aggregate over its
frame among the partition's current rows, sorted by the ORDER BY (ties by the input's key,
as `ORDER BY t, id`, for ROWS frames). A RANGE frame (and no frame: SQL's default, RANGE
UNBOUNDED PRECEDING) ends at the row's last peer, the rows of equal ORDER BY values, so
peers share one result as in SQL (every row is at hand over a table; a stream's rows are
taken in arrival order, ops/over_frames.py). A change of the input (an insert, an update
that moves a row, a delete, or a row that stops matching WHERE) changes the results of the
rows whose frame holds it: each partition keeps its rows in order with the result each had,
and after a batch recomputes every row from the first peer of the first position the batch
changed, writing those whose result changed (upserts) and tombstones for the rows that left.
Flink's OVER aggregation refuses a changing input (Nexmark's own q6 text says so); this
keeps the result as a table, maintained.

The rows are the operator's `PickledStores`, in the query's changelog with each batch's
outputs, restored at a restart.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.over_frames import aggregate, initial, step
from hispeed.ops.topn import NUMERIC, TopN, sort_column, table_rows_limit
from hispeed.ops.window_rank import WindowRank
from hispeed.plan.model import QueryPlan, field_name
from hispeed.state.stores import ChangelogChanges, PickledStores

#: the store kinds: each partition's rows in order, each input key's place
PARTS, PLACES = "OP", "OK"


class OverTable:
    """Keeps a plan's framed aggregates over a table input up to date (see the module)."""

    def __init__(self, plan: QueryPlan, emitter: SinkEncoder) -> None:
        assert plan.ranking is not None and plan.ranking.table_key is not None
        self.plan = plan
        self.ranking = plan.ranking
        self.calls = plan.ranking.frames
        self.emitter = emitter
        self.stores = PickledStores([PARTS, PLACES])
        where = {id(o): i for i, o in enumerate(plan.outputs)}
        self.key_at = [where[id(c)] for c in plan.key]
        self.value_at = [where[id(c)] for c in plan.value]
        self.fields = [c.field for c in self.calls]

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Apply a batch of the table's changes; the rows whose results changed go out."""
        plan, ranking = self.plan, self.ranking
        ctx = EvalContext()
        n = frame.num_rows
        deleted = np.asarray(tombstones, bool)
        if plan.where is not None:
            deleted = deleted | ~np.asarray(pc.fill_null(plan.where(frame, ctx), False), bool)
        parts = [c(frame, ctx).to_pylist() for c in ranking.partition]
        partitions: list[Any] = list(zip(*parts, strict=True)) if parts else [()] * n
        columns = [
            sort_column(c(frame, ctx), desc, c.type is not None and c.type.name in NUMERIC)
            for c, desc in ranking.order
        ]
        sorts = list(zip(*columns, strict=True))
        values = [
            c.value(frame, ctx).to_pylist() if c.value is not None else [1] * n for c in self.calls
        ]
        times = (
            ranking.order[0][0](frame, ctx).to_pylist()
            if any(c.frame and c.frame[0] == "RANGE" for c in self.calls)
            else [None] * n
        )
        # each row as it came, to compute the select list over it once its results are known
        rows = frame.to_pylist()
        keys = list(zip(*[c(frame, ctx).to_pylist() for c in ranking.table_key or []], strict=True))
        stamps = frame.column(field_name(plan.label, "ROWTIME")).to_pylist()
        context.report(ctx, frame, plan.label)
        store, places = self.stores[PARTS], self.stores[PLACES]
        first: dict[Any, int] = {}  # partition -> the first position the batch changed
        gone: dict[Any, Any] = {}  # key -> the row of a key that left, for its tombstone
        last: dict[Any, int] = {}
        for i in range(n):
            key, p = keys[i], partitions[i]
            old = places.get(key)
            if old is not None:  # the key's previous row leaves its partition
                old_p, entry = old
                entries = store.get(old_p, [])
                at = bisect.bisect_left(entries, (entry[0], entry[1]), key=_place)
                # its peers (equal ORDER BY values) before it lose it from their RANGE frames
                peers = bisect.bisect_left(entries, entry[0], hi=at, key=_order)
                first[old_p] = min(first.get(old_p, peers), peers)
                del entries[at]
                _put(store, old_p, entries)
                places.delete(key)
                gone[key] = (entry[2], stamps[i])
                last[old_p] = stamps[i]
            if deleted[i]:
                continue
            entry = (sorts[i], key, rows[i], [v[i] for v in values], times[i])
            entries = store.get(p, [])
            at = bisect.bisect_left(entries, (entry[0], entry[1]), key=_place)
            entries.insert(at, [*entry, None])
            peers = bisect.bisect_left(entries, entry[0], hi=at, key=_order)
            first[p] = min(first.get(p, peers), peers)
            store.put(p, entries)
            places.put(key, (p, entry[:3]))
            gone.pop(key, None)
            last[p] = stamps[i]
        # (output row, a tombstone?, time): the keys that left, then the rows recomputed
        changed: list[tuple[Any, Any, int]] = [(row, None, ts) for row, ts in gone.values()]
        for p, start in first.items():
            entries = store.get(p, [])
            columns = [self._results(j, entries, start) for j in range(len(self.calls))]
            for r in range(start, len(entries)):
                results = tuple(column[r - start] for column in columns)
                if entries[r][5] != results:
                    entries[r][5] = results
                    changed.append((entries[r][2], results, last[p]))
            if entries:
                store.put(p, entries)
        if changed:
            self._emit(frame.schema, changed, context)

    def _results(self, j: int, entries: list[Any], start: int) -> list[Any]:
        """Call j's results for a partition's rows from position `start` on, each over its
        frame: ROWS ends at the row itself, RANGE at its last peer (the rows of equal ORDER
        BY values, as SQL says: every row is at hand over a table, so peers share one result).
        """
        call = self.calls[j]
        frame, n = call.frame, len(entries)
        ranged = frame is None or frame[0] == "RANGE"
        ends = _peer_ends(entries, start) if ranged else range(start, n)
        if frame is None or frame[1] is None:  # UNBOUNDED: running results, row by row
            state = initial(call)
            for r in range(start):
                state = step(call, state, entries[r][3][j], 0)[1]
            running = []
            for r in range(start, n):
                result, state = step(call, state, entries[r][3][j], 0)
                running.append(result)
            return [running[end - start] for end in ends]
        size = frame[1]
        results = []
        for r, end in zip(range(start, n), ends, strict=True):
            if frame[0] == "ROWS":
                low = max(0, r - size)
            elif entries[r][4] is None:  # a null time: its frame is its peers, the null rows
                low = bisect.bisect_left(entries, entries[r][0], hi=r, key=_order)
            else:  # the rows whose time is within the interval before the row's own
                low = bisect.bisect_left(entries, entries[r][4] - size, hi=r, key=_time)
            results.append(aggregate(call.function, [e[3][j] for e in entries[low : end + 1]]))
        return results

    def _emit(
        self, schema: pa.Schema, changed: list[tuple[Any, Any, int]], ctx: OperatorContext
    ) -> None:
        """Write the changed rows (results None: a tombstone of a key that left): the select
        list computed over each input row with its results as the calls' columns."""
        for call in self.calls:
            schema = schema.append(pa.field(call.field, call.type.to_arrow()))
        blank = (None,) * len(self.calls)
        rows = [
            {**row, **dict(zip(self.fields, results or blank, strict=True))}
            for row, results, _ in changed
        ]
        frame = pa.RecordBatch.from_pylist(rows, schema=schema)
        ectx = EvalContext()
        arrays = [o.expr(frame, ectx) for o in self.plan.outputs]
        ctx.report(ectx, frame, self.plan.label)
        self.emitter.emit(
            [arrays[i] for i in self.key_at],
            [arrays[i] for i in self.value_at],
            pa.array([ts for _, _, ts in changed], pa.int64()),
            np.array([results is None for _, results, _ in changed], bool),
            ctx.out,
        )


def _place(entry: Any) -> tuple[Any, Any]:
    """Where an entry sorts: its ORDER BY values, then its key (unique; ties go by it)."""
    return (entry[0], entry[1])


def _order(entry: Any) -> Any:
    """An entry's ORDER BY values: the rows of equal ones are peers."""
    return entry[0]


def _time(entry: Any) -> Any:
    """An entry's time (a RANGE frame's ORDER BY column)."""
    return entry[4]


def _peer_ends(entries: list[Any], start: int) -> list[int]:
    """For each position from `start` on, the last position of its peers."""
    ends = [0] * (len(entries) - start)
    end = len(entries) - 1
    for r in range(len(entries) - 1, start - 1, -1):
        if r < end and entries[r + 1][0] != entries[r][0]:
            end = r
        ends[r - start] = end
    return ends


def _put(store: Any, p: Any, entries: list[Any]) -> None:
    if entries:
        store.put(p, entries)
    else:
        store.delete(p)


def ranking_operator(
    plan: QueryPlan, emitter: SinkEncoder, properties: dict[str, Any]
) -> TopN | OverTable | WindowRank:
    """The operator of a plan's ranking step: Top-N (ops/topn.py, its table bound from the
    engine's and query's `properties`), or aggregates over frames of a table's rows."""
    assert plan.ranking is not None
    if plan.ranking.function == "OVER":
        return OverTable(plan, emitter)
    if plan.ranking.window_end is not None:
        return WindowRank(plan, emitter)
    return TopN(plan, emitter, table_rows_limit(properties))
