"""Window Top-N and window deduplication over a window table function's rows, as Flink's.

`ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k ORDER BY t) ... WHERE rn <= N`
over `TUMBLE(TABLE s, ...)` (plan/ranking.py plans it): each window's rows are ranked once,
when the window closes, and the best N of each partition are output then; nothing is output
before, and nothing is taken back after (Flink's window Top-N and window deduplication emit
final results at the window's end and purge the window's state).

A window closes when the watermark reaches its end, as in Flink: the least of the input
partitions' newest row times (ops/watermark.py), with no delay, as the window aggregation of
a window table function has; a row whose window has closed is late and dropped, as Flink
drops one. Ties in the order go to the row that came first.

Each open window's best rows are the operator's `PickledStores`, written to the query's
changelog with the batch's outputs and stream time in one transaction (runtime/task.py) and
restored from it at a restart.
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
from hispeed.ops.topn import output_arrays, output_places, ranked_values
from hispeed.ops.watermark import LEVEL, NEVER, BatchClock
from hispeed.ops.window import row_windows
from hispeed.plan.model import ROW_WINDOW_END, QueryPlan, field_name
from hispeed.state.changelog import write_stream_time
from hispeed.state.stores import ChangelogChanges, PickledStores

#: the store kinds: each open window's partitions' best rows, keyed by (window end,
#: partition), and the arrival counter that breaks ties
WINDOWS, SEQUENCE = "WR", "WS"


def _place(entry: tuple[Any, ...]) -> tuple[Any, Any]:
    """Where an entry sorts: its ORDER BY values, then its arrival (unique)."""
    return (entry[0], entry[1])


class WindowRank:
    """Runs a plan's window ranking over a query task's batches (see the module)."""

    def __init__(self, plan: QueryPlan, emitter: SinkEncoder) -> None:
        assert plan.ranking is not None
        assert plan.ranking.window_end is not None
        self.plan = plan
        self.ranking = plan.ranking
        self.window_end = plan.ranking.window_end
        self.emitter = emitter
        self.limit = plan.ranking.limit
        self.stores = PickledStores([WINDOWS, SEQUENCE])
        #: the outputs computed from the rows (all but the rank), in order; the key's and
        #: the value's places among the outputs
        self.computed, self.key_at, self.value_at = output_places(plan)
        #: the open windows' store keys by window end (built from the store when first
        #: needed, so also after a restore)
        self._open: dict[int, set[Any]] | None = None
        #: HOP, CUMULATE: the batch row each copy (one per window) is of
        self._rows = np.zeros(0, np.int64)

    # -- state ------------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)
        self._open = None

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def _windows(self) -> dict[int, set[Any]]:
        if self._open is None:
            self._open = {}
            for key in self.stores[WINDOWS]:
                self._open.setdefault(key[0], set()).add(key)
        return self._open

    # -- running ----------------------------------------------------------------------------

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Rank a batch's rows into their windows; output the windows it closes."""
        plan = self.plan
        ctx = EvalContext()
        times = context.stream_time
        # the watermark before each row: the least of the input partitions' newest times
        # (ops/watermark.py), advanced by every record read (before any filter)
        stamps = frame.column(field_name(plan.label, "ROWTIME")).to_numpy(zero_copy_only=False)
        clock = BatchClock(times, context.partition, context.idle, watermark=True)
        was = (times.get(context.partition), times.get(LEVEL))
        seen = np.concatenate([[clock.seed], clock.rows(stamps)])
        before, now = seen[:-1], int(seen[-1])
        if plan.session_rows is not None:
            # SESSION's rows come from closed sessions (ops/session_rows.py dropped the late
            # ones): each is ranked, and its session output, in this batch
            before = np.full(len(before), NEVER, np.int64)
        if self.ranking.row_windows is not None:
            frame, before = self._copies(frame, stamps, before)
            tombstones = np.asarray(tombstones, bool)[self._rows]
        # a stream's rows: a tombstone (no value) is no row, nor is one failing the WHERE
        keep = ~np.asarray(tombstones, bool)
        if plan.where is not None:
            keep &= np.asarray(pc.fill_null(plan.where(frame, ctx), False), bool)
        if not keep.all():
            frame = frame.filter(pa.array(keep))
            before = before[keep]
        if frame.num_rows:
            self._rank(frame, ctx, before.tolist())
        context.report(ctx, frame, plan.label)
        now = clock.done(now)
        if (times.get(context.partition), times.get(LEVEL)) != was:
            write_stream_time(context.out.changelog, times)
        if now != NEVER:
            self._close(now, context)

    def _copies(
        self, frame: pa.RecordBatch, stamps: np.ndarray, before: np.ndarray
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """HOP's and CUMULATE's rows: a copy of each row per window holding it, the window's
        end in the plan's `ROW_WINDOW_END` column (the row indexes kept in `_rows`)."""
        w = self.ranking.row_windows
        assert w is not None
        rows, ends = row_windows(stamps.astype(np.int64), w.kind, w.size_ms, w.step_ms, w.offset_ms)
        self._rows = rows
        copies = frame.take(pa.array(rows))
        column = field_name(self.plan.label, ROW_WINDOW_END)
        return copies.append_column(column, pa.array(ends, pa.int64())), before[rows]

    def _rank(self, frame: pa.RecordBatch, ctx: EvalContext, before: list[int]) -> None:
        """Put each row in its window's partition (its best N kept); a row whose window had
        closed when it came (`before`: the stream time then) is late and dropped."""
        partitions, sorts, rows = ranked_values(self.plan, self.computed, frame, ctx)
        stamps = frame.column(field_name(self.plan.label, "ROWTIME")).to_pylist()
        ends = self.window_end(frame, ctx).to_pylist()
        store = self.stores[WINDOWS]
        windows = self._windows()
        n = self.limit
        sequence = int(self.stores[SEQUENCE].get("next", 0))
        for p, s, row, ts, end, then in zip(
            partitions, sorts, rows, stamps, ends, before, strict=True
        ):
            if end is None or end <= then:
                continue  # its window has closed: a late row
            key = (end, p)
            entries = store.get(key)
            if entries is None:
                entries = []
                windows.setdefault(end, set()).add(key)
            elif len(entries) >= n and entries[-1][0] <= s:
                continue  # ranks below the N-th (a tie goes to the row that came first)
            # entries compare by their ORDER BY values, then their arrival (unique)
            bisect.insort(entries, (s, sequence, row, ts), key=_place)
            sequence += 1
            if len(entries) > n:
                entries.pop()
            store.put(key, entries)
        self.stores[SEQUENCE].put("next", sequence)

    def _close(self, now: int, context: OperatorContext) -> None:
        """Output and let go of every window stream time has reached the end of."""
        windows = self._windows()
        closed = sorted(end for end in windows if end <= now)
        if not closed:
            return
        store = self.stores[WINDOWS]
        out: list[tuple[int, Any, int]] = []  # (rank, row, time)
        for end in closed:
            for key in sorted(windows.pop(end), key=repr):
                entries = store.get(key) or []
                out += [(r + 1, e[2], e[3]) for r, e in enumerate(entries)]
                store.delete(key)
        self._emit(out, context)

    def _emit(self, ranked: list[tuple[int, Any, int]], ctx: OperatorContext) -> None:
        rows = [row for _, row, _ in ranked]
        arrays = output_arrays(self.plan, self.computed, rows, [r for r, _, _ in ranked])
        self.emitter.emit(
            [arrays[i] for i in self.key_at],
            [arrays[i] for i in self.value_at],
            pa.array([t for _, _, t in ranked], pa.int64()),
            np.zeros(len(ranked), bool),
            ctx.out,
        )
