"""Session windows over a stream, a whole batch at a time: the fast path beside the reference.

`Aggregator._session_update` (ops/aggregate.py) defines what a record does to its group's
sessions; this module computes the same for a batch with numpy in the common case, where each
group's records arrive in time order (none is older than the newest record its group has kept,
in this batch or before). Then a record either joins its group's latest session (it is within
the gap of its end) or opens a new one; no record bridges two sessions, and whether a record is
too late depends on its own time only. A record that moves a session's end deletes the
session's old key (the deletion is stamped with the old end), as the reference's merge does.

So sessions are runs of a group's records cut where the gap is exceeded, and the aggregates run
over them as over windows' keys (ops/vectorized.py), seeded with the latest session's
state when a run continues it. A batch with a record older than its group's newest is refused
before anything changes, and the reference path runs it.

The state stays in the reference path's form (`Aggregator.sessions` and `states`): a batch
changes one or two sessions per group it holds, and records deleted keys only when they were
written to the changelog before the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.functions.registry import EvalContext
from hispeed.ops.aggregate_kernels import (
    IntArray,
    KernelColumn,
    RefusedError,
    Segments,
    stable_order,
)
from hispeed.ops.changes import Changes
from hispeed.ops.vectorized import FastPath, Prepared, ReferenceState
from hispeed.plan.model import QueryPlan

_NONE = int(np.iinfo(np.int64).min)  # no time: a group without sessions


class SessionAggregator(FastPath):
    """Run `Aggregator.process` for whole batches of a stream with SESSION windows.

    `build(plan, coalesce=...)` returns None for a plan it does not run (as
    `VectorizedAggregator`'s, but for sessions); `process` returns False, having changed
    nothing, for a batch the reference path must run.
    """

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        super().__init__(plan, coalesce=coalesce)
        assert self.agg.window is not None
        self.gap = self.agg.window.size_ms

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        agg = plan.aggregation
        if not FastPath.supports(plan) or agg is None or agg.window is None:
            return False
        return agg.window.kind == "SESSION"

    def _evict(self, aggregator: ReferenceState, stream_time: dict[int, int]) -> None:
        aggregator.evict(stream_time)

    def _prepare(
        self, aggregator: ReferenceState, frame: pa.RecordBatch, seed: int, ctx: EvalContext
    ) -> _SessionBatch | None:
        """Cut each group's records into sessions and run the aggregates over them."""
        selected = self._select(frame, seed, ctx)
        if selected is None:
            return None
        groups, args, rows, stamps = selected.groups, selected.args, selected.rows, selected.stamps
        stream_time, local, tuples = selected.stream_time, selected.local, selected.tuples
        latest_start, latest_end = _latest_sessions(aggregator, tuples)
        order = stable_order(local, len(tuples))  # by group, each in record order
        g = local[order]
        ts = stamps[order]
        n = len(order)
        # in time order, a record opens or extends a session that ends at its own time, so it
        # is too late exactly when stream time has passed its time plus the grace period and
        # the gap (with EMIT FINAL: has reached it, the session then being closed)
        close = ts + self.agg.close_ms
        kept_mask = close > stream_time[order] if self.final else close >= stream_time[order]
        # the newest time each record's group holds before it: an earlier record kept in this
        # batch, or else the end of the group's latest session
        heads = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        head_of = np.repeat(heads, np.diff(np.r_[heads, n]))
        last_kept = np.maximum.accumulate(np.where(kept_mask, np.arange(n), -1))
        before = np.r_[-1, last_kept[:-1]]
        newest = np.where(before >= head_of, ts[np.maximum(before, 0)], latest_end[g])
        if (ts < newest).any():
            raise RefusedError  # out of order within a group: it may bridge sessions
        kept = np.flatnonzero(kept_mask)
        if not len(kept):
            return _SessionBatch.nothing(int(stream_time[-1]))
        ts_k = ts[kept]
        prev = newest[kept]
        g_k = g[kept]
        fresh = prev == _NONE
        opens = fresh | (ts_k - np.where(fresh, ts_k, prev) > self.gap)
        if self.final and (~opens & (prev + self.agg.close_ms <= stream_time[order][kept])).any():
            # EMIT FINAL: the reference path closes a session once stream time passes its
            # end plus grace, before the record that would have extended it opens a new one
            raise RefusedError
        seg_starts = np.flatnonzero(np.r_[True, (g_k[1:] != g_k[:-1]) | opens[1:]])
        lengths = np.diff(np.r_[seg_starts, len(kept)]).astype(np.int64)
        segments = Segments(seg_starts, lengths, np.repeat(np.arange(len(seg_starts)), lengths))
        continues = ~opens[seg_starts]  # the run extends its group's latest session
        seg_group = g_k[seg_starts]
        session_start = np.where(continues, latest_start[seg_group], ts_k[seg_starts])
        priors = self._priors(aggregator, tuples, seg_group, continues, latest_start, latest_end)
        frame_rows = rows[order][kept]
        return _SessionBatch(
            self,
            groups,
            tuples,
            self._run_kernels(priors, args, frame_rows, segments),
            segments,
            ts_k,
            prev,
            ~opens & (ts_k > prev),
            order[kept],
            frame_rows,
            seg_group,
            continues,
            session_start,
            latest_start,
            latest_end,
            int(stream_time[-1]),
        )

    def _priors(
        self,
        aggregator: ReferenceState,
        tuples: list[tuple[Any, ...]],
        seg_group: IntArray,
        continues: np.ndarray,
        latest_start: IntArray,
        latest_end: IntArray,
    ) -> list[np.ndarray]:
        """The kernels' arrays of each run's prior state: its group's latest session's states
        if it continues that session, else a new state's."""
        n = len(seg_group)
        arrays = [
            np.full(n, fill, dtype)
            for kernel in self.kernels
            for dtype, fill in zip(kernel.dtypes, kernel.fill(), strict=True)
        ]
        runs = np.flatnonzero(continues)
        if not len(runs):
            return arrays
        per_call: list[list[Any]] = [[] for _ in self.kernels]
        states = aggregator.states
        for gi in seg_group[runs].tolist():
            window = (int(latest_start[gi]), int(latest_end[gi]))
            records, running = states[(tuples[gi], window)]
            if records is not None:
                raise RefusedError  # kept records: not a state these kernels make
            for values, state in zip(per_call, running, strict=True):
                values.append(state)
        k = 0
        for kernel, values in zip(self.kernels, per_call, strict=True):
            columns = kernel.from_python(values)
            if columns is None:
                raise RefusedError
            for column in columns:
                arrays[k][runs] = column
                k += 1
        return arrays


def _latest_sessions(
    aggregator: ReferenceState, tuples: list[tuple[Any, ...]]
) -> tuple[IntArray, IntArray]:
    """Each group's latest session: (start, end), or `_NONE` for a group without sessions."""
    starts = np.full(len(tuples), _NONE, np.int64)
    ends = np.full(len(tuples), _NONE, np.int64)
    sessions = aggregator.sessions
    last = itemgetter(1)
    for j, group in enumerate(tuples):
        found = sessions.get(group)
        if found:
            starts[j], ends[j] = max(found, key=last)
    return starts, ends


@dataclass
class _SessionBatch(Prepared):
    """A prepared batch: its sessions' runs of records and the aggregates' values over them."""

    owner: SessionAggregator | None
    groups: list[pa.Array]
    tuples: list[tuple[Any, ...]]
    columns: list[KernelColumn]
    segments: Segments | None
    stamps: IntArray  # each kept record's time (sorted by group, then record order)
    prev: IntArray  # the end of the session before the record joined it
    grows: np.ndarray  # the record moves its session's end: the old key is deleted
    records: IntArray  # each kept record's index in the batch's records
    rows: IntArray  # ... and its row in the frame
    seg_group: IntArray  # each session run's group (an index in `tuples`)
    continues: np.ndarray  # ... whether it continues its group's latest session
    session_start: IntArray  # ... and its session's start
    latest_start: IntArray  # each group's latest session before the batch (or _NONE)
    latest_end: IntArray
    stream_time: int

    @classmethod
    def nothing(cls, stream_time: int) -> _SessionBatch:
        none = np.zeros(0, np.int64)
        flags = none.astype(bool)
        return cls(
            None, [], [], [], None, none, none, flags, none, none, none, flags, none, none,
            none, stream_time,
        )  # fmt: skip

    def apply(self, aggregator: ReferenceState) -> Changes | None:
        if self.segments is None or self.owner is None:
            return None
        self._store(aggregator)
        return self._changes(self.owner)

    def _store(self, aggregator: ReferenceState) -> None:
        assert self.segments is not None and self.owner is not None
        per_call: list[list[Any]] = []
        for kernel, column in zip(self.owner.kernels, self.columns, strict=True):
            per_call.append(kernel.to_python(column.finals()))
        count = len(self.seg_group)
        states = zip(*per_call, strict=True) if per_call else ([] for _ in range(count))
        ends = self.stamps[self.segments.ends].tolist()  # times only grow along a session
        sessions = aggregator.sessions
        dirty = aggregator.dirty
        tuples = self.tuples
        for gi, continues, start, end, state in zip(
            self.seg_group.tolist(),
            self.continues.tolist(),
            self.session_start.tolist(),
            ends,
            states,
            strict=True,
        ):
            group = tuples[gi]
            group_sessions = sessions.setdefault(group, [])
            if continues:  # as the reference, the merged session is removed and added again
                old = [int(self.latest_start[gi]), int(self.latest_end[gi])]
                group_sessions.remove(old)
                old_key = (group, (old[0], old[1]))
                del aggregator.states[old_key]
                dirty.add(("S", old_key))
            group_sessions.append([start, end])
            key = (group, (start, end))
            aggregator.states[key] = (None, list(state))
            dirty.add(("S", key))
            dirty.add(("W", group))

    def _changes(self, owner: SessionAggregator) -> Changes:
        """Per record: the deletion of the key it moved, then its session's new row. With the
        record cache on, each key's last change: all deletions (a deleted key never comes
        back), and each session's row after its last record."""
        assert self.segments is not None
        segments = self.segments
        changed = segments.ends if owner.coalesce else np.arange(len(self.stamps))
        removed = np.flatnonzero(self.grows)
        position = np.concatenate((2 * self.records[removed], 2 * self.records[changed] + 1))
        order = np.argsort(position)
        event = np.concatenate((removed, changed))[order]
        deleted = np.r_[np.ones(len(removed), bool), np.zeros(len(changed), bool)][order]
        start = self.session_start[segments.ids[event]]
        end = np.where(deleted, self.prev[event], self.stamps[event])
        if owner.coalesce:
            index, by_key = np.arange(len(self.seg_group)), True
        else:
            index, by_key = changed, False
        results = []
        for column in self.columns:
            values = column.results(index, by_key=by_key)
            gaps = pa.nulls(len(removed), values.type)
            results.append(pa.concat_arrays([gaps, values]).take(pa.array(order)))
        rows = pa.array(self.rows[event])
        gids = self.seg_group[segments.ids[event]]
        having = owner.plan.having is not None
        triples = np.stack((gids, start, end), axis=1)
        unique, key_ids = (
            np.unique(triples, axis=0, return_inverse=True) if having else (triples, event)
        )
        tuples = self.tuples

        def keys() -> list[Any]:
            return [(tuples[g], (s, e)) for g, s, e in unique.tolist()]

        return Changes(
            [g.take(rows) for g in self.groups],
            results,
            (pa.array(start), pa.array(end)),
            pa.array(end),  # a deletion is stamped with the old end, a row with its record's
            np.asarray(key_ids, np.int64).reshape(-1),
            keys,
            deleted,
            rows,
        )


__all__ = ["SessionAggregator"]
