"""GROUP BY over a stream, a whole batch at a time: the fast path beside the reference.

`ReferenceState.process_records` (ops/aggregate.py) walks the records one by one; this module
computes the same changes with numpy: the batch's (window, group) events are sorted by key
(stably, so each key keeps its records' order) and every aggregate becomes a cumulative
computation per key, seeded with the state the key had before the batch. With the record cache
off (ksqlDB's `ksql.streams.cache.max.bytes.buffering` = 0) every event is a change, in record
order and, for one record, in window order, exactly as the reference path emits them;
otherwise only each key's last change of the batch is emitted (DESIGN.md, decision 3), and
only each key's final state is computed.

The state between batches is a `ColumnarStateStore` (state/columns.py): the reference
path's states as numpy columns, one block per window; without a window, a `KeyedStateStore`
(state/keyed.py): a slot per key, found by a vectorized hash lookup, so a batch costs the same
whatever the number of keys. A batch the reference path runs gets
them as the reference's dict and gives them back after (`ReferenceState.process_records`).

Exactness: floating-point sums are accumulated in record order (`ufunc.accumulate` and a loop
over ranks, never a pairwise reduction); integer sums wrap as the aggregates do. A batch whose
values would make the two paths differ (a NaN or a negative zero reaching MIN or MAX, a BIGINT
average whose total could leave 64 bits) is refused before anything is changed, and the caller
runs the reference path on it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.ops.aggregate_kernels import (
    IntArray,
    KernelColumn,
    RefusedError,
    Segments,
    kernel_for,
    stable_order,
    supported_call,
)
from hispeed.ops.base import OperatorContext, Outputs
from hispeed.ops.changes import Changes, only_rows
from hispeed.ops.decode import frame_headers
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.watermark import BatchClock, window_clock
from hispeed.ops.window import final_retained_from, open_windows
from hispeed.plan.model import QueryPlan, field_name
from hispeed.state.columns import ColumnarStateStore
from hispeed.state.keyed import KeyedStateStore
from hispeed.state.stores import KindStore

_KEY_TYPES = frozenset({"BOOLEAN", "INTEGER", "BIGINT", "STRING"})


class ReferenceState(Protocol):
    """What the vectorized paths share with the reference path (ops/aggregate.py's
    `ReferenceState`): its state in the reference's form, the emit operator, and the checkpoint
    and eviction of the state."""

    #: (group, window) -> the aggregate states, in the reference path's form
    states: KindStore
    #: session windows per group: list of [start, end]
    sessions: KindStore
    #: (group, window) whose latest output row passed HAVING
    present: KindStore
    #: EMIT FINAL: the newest record time of open windows (only as restored from a changelog
    #: written before row times were taken from the states)
    window_time: KindStore
    #: EMIT FINAL: the headers of the last record of open windows (the reference path's)
    window_headers: KindStore
    #: the (kind, key) of the states changed since the last checkpoint
    dirty: set[Any]
    #: the emit operator the changes go to
    emitter: SinkEncoder

    def horizon(self, stream_time: dict[int, int]) -> int:
        """Windows that end before this time can no longer change."""
        ...

    def evict(self, stream_time: dict[int, int]) -> None:
        """Forget the windows that can no longer change, in the reference's form."""
        ...

    def checkpoint(self, out: Outputs, stream_time: dict[int, int]) -> None:
        """Write stream time and the changed states to the changelog."""
        ...

    def close_windows(self, stream_time: int) -> list[Any]:
        """EMIT FINAL: take out the windows (in the reference's form) that stream time has
        closed; their final changes, in output order."""
        ...

    def emit_changes(self, changes: list[Any], out: Outputs) -> None:
        """Output the reference path's changes (its select list, HAVING and emit)."""
        ...


@dataclass
class _Selection:
    """The records of a batch that count, and what they evaluate to."""

    groups: list[pa.Array]  # the GROUP BY values (of every row of the frame)
    args: list[list[pa.Array]]  # each call's arguments (likewise)
    rows: IntArray  # the rows that count
    stamps: IntArray  # their timestamps
    stream_time: IntArray  # the stream time each of them sees
    local: IntArray  # their groups' indexes in `distinct`
    #: the distinct groups: tuples, or for one integer column the values (no Python objects),
    #: or (asked for `columns`) one Arrow array per group column
    distinct: list[tuple[Any, ...]] | IntArray | list[pa.Array]

    @cached_property
    def tuples(self) -> list[tuple[Any, ...]]:
        """The distinct groups as the reference's tuples."""
        if isinstance(self.distinct, np.ndarray):
            return [(v,) for v in self.distinct.tolist()]
        assert not self.distinct or isinstance(self.distinct[0], tuple)
        return self.distinct


class FastPath(ABC):
    """What the vectorized paths share: the plan's kernels, the selection of a batch's records
    and the output of changes. `supports` and `process` are each path's."""

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        assert self.supports(plan)
        agg = plan.aggregation
        assert agg is not None
        self.plan = plan
        self.agg = agg
        #: EMIT FINAL: a batch's changes are kept, and each window's final row is output
        #: once stream time passes its end plus the grace period (then only each key's last
        #: change is computed, as with the record cache on)
        self.final = plan.emit == "FINAL"
        self.coalesce = coalesce or self.final
        #: one per state call: the query's calls', then the row time's
        self.kernels = [kernel_for(call) for call in agg.state_calls]
        #: the batch's clock (set by `process`)
        self._clock = BatchClock({}, 0, None, watermark=False, floor=0)

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        """Whether this path runs the plan: here, what all paths need."""
        agg = plan.aggregation
        if agg is None or plan.source.kind != "STREAM":
            return False
        if plan.emit == "FINAL" and agg.window is None:
            return False  # ksqlDB refuses EMIT FINAL without a window; nothing to run
        if not all(c.type is not None and c.type.name in _KEY_TYPES for c in agg.group_exprs):
            return False
        return all(supported_call(call) for call in agg.calls)

    @classmethod
    def build(cls, plan: QueryPlan, *, coalesce: bool) -> Self | None:
        """The fast path for this plan, or None if it does not support the plan."""
        return cls(plan, coalesce=coalesce) if cls.supports(plan) else None

    def process(
        self, aggregator: ReferenceState, frame: pa.RecordBatch, context: OperatorContext
    ) -> bool:
        """Do all that the aggregator's `process` does for this batch; False if it must do it
        itself (then nothing has changed)."""
        ctx = EvalContext()
        stream_time = context.stream_time
        clock = window_clock(self.agg.window, stream_time, context.partition, context.idle)
        self._clock = clock
        seed = clock.seed
        try:
            if self.final:
                self._final_ready(aggregator, frame)
            batch = self._prepare(aggregator, frame, seed, ctx)
        except RefusedError:
            return False
        context.report(ctx, frame, self.plan.label)
        changes = batch.apply(aggregator) if batch is not None else None
        clock.see(frame.column(field_name(self.plan.label, "ROWTIME")))
        now = clock.done(batch.stream_time if batch is not None else seed)
        out = context.out
        if self.final:
            self._emit_closed(aggregator, now, out)
            changes = None
        self._evict(aggregator, stream_time)
        if changes is not None and len(changes):
            headers = frame_headers(frame, self.plan.label)
            if headers is not None and changes.rows is not None:
                # a change carries the headers of the record that made it, as Kafka Streams'
                # aggregations forward the current record's (and its cache, the last one's)
                headers = headers.take(changes.rows)
            else:
                headers = None
            self.emit(aggregator, changes, out, headers)
        aggregator.checkpoint(out, stream_time)
        return True

    def _final_ready(self, aggregator: ReferenceState, frame: pa.RecordBatch) -> None:
        """EMIT FINAL: raise `RefusedError` for a batch only the reference path runs: one
        with headers (a final row carries its window's last record's, which the reference path
        keeps per window), or while windows it keeps such headers or times for are open."""
        headers = frame_headers(frame, self.plan.label)
        if headers is not None and headers.null_count < len(headers):
            raise RefusedError
        if len(aggregator.window_headers) or len(aggregator.window_time):
            raise RefusedError

    def _emit_closed(self, aggregator: ReferenceState, now: int, out: Outputs) -> None:
        """EMIT FINAL: output the final row of each window stream time `now` has closed."""
        changes = aggregator.close_windows(now)
        if changes:
            aggregator.emit_changes(changes, out)

    @abstractmethod
    def _prepare(
        self, aggregator: ReferenceState, frame: pa.RecordBatch, seed: int, ctx: EvalContext
    ) -> Prepared | None:
        """Compute the batch's changes without changing any state (None: no record counts);
        raise `RefusedError` for a batch the reference path must run."""

    @abstractmethod
    def _evict(self, aggregator: ReferenceState, stream_time: dict[int, int]) -> None:
        """Forget the windows that can no longer change."""

    def _select(
        self, frame: pa.RecordBatch, seed: int, ctx: EvalContext, *, columns: bool = False
    ) -> _Selection | None:
        """Evaluate the batch's expressions for the records that count (they pass WHERE and
        have no NULL group), or None if none does; `columns`: the distinct groups as Arrow
        columns."""
        plan = self.plan
        keep = np.ones(frame.num_rows, bool)
        if plan.where is not None:
            keep &= np.asarray(
                pc.fill_null(plan.where(frame, ctx), False).to_numpy(zero_copy_only=False)
            )
        groups = [g(frame, ctx) for g in self.agg.group_exprs]
        args = [[a(frame, ctx) for a in call.args] for call in self.agg.state_calls]
        for g in groups:
            if g.null_count:
                keep &= np.asarray(g.is_valid().to_numpy(zero_copy_only=False))
        rows = np.flatnonzero(keep)
        if not len(rows):
            return None
        stamps = np.asarray(
            frame.column(field_name(plan.label, "ROWTIME")).to_numpy(zero_copy_only=False),
            np.int64,
        )[rows]
        # stream time as each record sees it: it advances record by record (a window table
        # function's: the watermark over the input's partitions, ops/watermark.py)
        stream_time = self._clock.rows(stamps)
        if columns:
            local, distinct = _group_columns(groups, rows)
            return _Selection(groups, args, rows, stamps, stream_time, local, distinct)
        local, tuples = _group_ids(groups, rows)
        return _Selection(groups, args, rows, stamps, stream_time, local, tuples)

    def _run_kernels(
        self,
        priors: list[np.ndarray],
        args: list[list[pa.Array]],
        rows: IntArray,
        segments: Segments,
    ) -> list[KernelColumn]:
        """Each call's values over the sorted events (`rows` of the frame), from the keys'
        prior states (the kernels' arrays, one after the other)."""
        columns: list[KernelColumn] = []
        k = 0
        for kernel, call_args in zip(self.kernels, args, strict=True):
            width = len(kernel.dtypes)
            prior = priors[k : k + width]
            columns.append(kernel.run(prior, call_args, rows, segments, not self.coalesce))
            k += width
        return columns

    # -- output -----------------------------------------------------------------------------

    def emit(
        self,
        aggregator: ReferenceState,
        changes: Changes,
        out: Outputs,
        headers: pa.Array | None = None,
    ) -> None:
        """Compute the select list and HAVING over the changes and encode them (as `_emit`);
        `headers`: each change's."""
        agg = self.agg
        arrays: list[pa.Array] = []
        names: list[str] = []
        for col, values in zip(agg.group_columns, changes.groups, strict=True):
            arrow = col.type.to_arrow()
            arrays.append(values if values.type == arrow else values.cast(arrow))
            names.append(col.field)
        for call, values in zip(agg.state_calls, changes.results, strict=True):
            arrays.append(values)
            names.append(call.column.field)
        if changes.window is not None:
            arrays += list(changes.window)
            names += ["$WINDOWSTART", "$WINDOWEND"]
        post = pa.RecordBatch.from_arrays(arrays, names=names)
        ctx = EvalContext()
        plan = self.plan
        keys = [c.expr(post, ctx) for c in plan.key]
        values = [c.expr(post, ctx) for c in plan.value]
        stamps = changes.timestamps
        window = changes.window
        removed = changes.deleted if changes.deleted is not None else np.zeros(len(changes), bool)
        deleted = removed
        if plan.having is not None:
            passed = np.asarray(
                pc.fill_null(plan.having(post, ctx), False).to_numpy(zero_copy_only=False)
            )
            passed &= ~removed
            deleted = ~passed
            emitted = _having_emits(aggregator, changes, passed)
            if not emitted.any():
                return
            if not emitted.all():
                keys, values, stamps, deleted, window = only_rows(
                    emitted, keys, values, stamps, deleted, window
                )
                if headers is not None:
                    headers = headers.filter(pa.array(emitted))
        aggregator.emitter.emit_windowed(keys, values, stamps, deleted, out, window, headers)


class VectorizedAggregator(FastPath):
    """Run `ReferenceState.process` for whole batches of a stream: no window, TUMBLING or HOPPING.

    `build(plan, coalesce=...)` returns None for a query this path does not run (a table
    source, session windows, other aggregates, group keys other than BOOLEAN, INTEGER, BIGINT
    or STRING). `process` returns False, having changed nothing, for a batch the reference
    path must run. With EMIT FINAL a closed window's block leaves the store whole: the blocks
    by window start are the index of window ends that finds what stream time has closed.
    """

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        super().__init__(plan, coalesce=coalesce)
        window = self.agg.window
        self.size = window.size_ms if window is not None else 0
        self.advance = (window.advance_ms or window.size_ms) if window is not None else 0
        #: the state between batches
        self.store: ColumnarStateStore | KeyedStateStore
        if window is None:
            types = [c.type.to_arrow() for c in self.agg.group_columns]
            self.store = KeyedStateStore(self.kernels, types)
        else:
            self.store = ColumnarStateStore(self.kernels, self.size)
        #: EMIT FINAL: the stream time each record of the last prepared batch saw
        self._batch_times: IntArray = np.zeros(0, np.int64)

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        agg = plan.aggregation
        if not FastPath.supports(plan) or agg is None:
            return False
        if agg.window is not None and agg.window.kind not in ("TUMBLING", "HOPPING"):
            return False
        return agg.window is None or (agg.window.advance_ms or agg.window.size_ms) > 0

    # -- processing -------------------------------------------------------------------------

    def _evict(self, aggregator: ReferenceState, stream_time: dict[int, int]) -> None:
        self.store.evict(aggregator.horizon(stream_time))

    def _emit_closed(self, aggregator: ReferenceState, now: int, out: Outputs) -> None:
        """EMIT FINAL: the closed windows' blocks leave the store whole and their final rows
        are computed from the state columns, in order of window end (then start) and within a
        window in the order its groups came in, as the reference path outputs them."""
        store = self.store
        assert isinstance(store, ColumnarStateStore)  # EMIT FINAL has a window
        grace = self.agg.grace_ms
        closed = store.close(now - grace)
        window = self.agg.window
        assert window is not None
        # a window is output (or found gone from the window store) at the stream time of the
        # batch's first record that closes it, as the reference path does record by record
        times = self._batch_times if len(self._batch_times) else np.array([now], np.int64)
        kept = []
        for c in closed:
            at = int(np.searchsorted(times, c[0] + self.size + grace))
            closing_time = int(times[min(at, len(times) - 1)])
            retained_from = final_retained_from(
                closing_time, self.size, self.advance, grace, window.retention_ms
            )
            if c[0] >= retained_from:
                kept.append(c)
        closed = kept
        self._batch_times = np.zeros(0, np.int64)
        if not closed:
            return
        store_groups = store.groups
        starts = np.concatenate([np.full(len(g), s, np.int64) for s, g, _ in closed])
        gids = np.concatenate([g for _, g, _ in closed])
        arrays = [np.concatenate(parts) for parts in zip(*(a for _, _, a in closed), strict=True)]
        tuples = [store_groups[g] for g in gids.tolist()]
        results: list[pa.Array] = []
        k = 0
        for kernel in self.kernels:
            width = len(kernel.dtypes)
            results.append(kernel.result(arrays[k : k + width]))
            k += width
        groups = [
            pa.array([t[i] for t in tuples], col.type.to_arrow())
            for i, col in enumerate(self.agg.group_columns)
        ]
        size = self.size
        changes = Changes(
            groups,
            results,
            (pa.array(starts), pa.array(starts + size)),
            results[-1].cast(pa.int64()),  # the window's newest record time
            np.arange(len(tuples), dtype=np.int64),
            lambda: [(t, (s, s + size)) for t, s in zip(tuples, starts.tolist(), strict=True)],
        )
        self.emit(aggregator, changes, out)

    def _prepare(
        self, aggregator: ReferenceState, frame: pa.RecordBatch, seed: int, ctx: EvalContext
    ) -> _Batch | None:
        """Evaluate the batch's expressions and key its events (the order `process` uses)."""
        store = self.store
        keyed = isinstance(store, KeyedStateStore)
        selected = self._select(frame, seed, ctx, columns=keyed)
        if selected is None:
            return None
        groups, args, rows, stamps = selected.groups, selected.args, selected.rows, selected.stamps
        stream_time, local = selected.stream_time, selected.local
        self._batch_times = stream_time
        distinct = selected.distinct
        starts: IntArray | None = None
        if isinstance(store, KeyedStateStore):
            # the events sorted by their group's index in the batch: the store's slots need
            # no order
            gid = store.slots(distinct)[local]  # type: ignore[arg-type]
            event_rows = np.arange(len(rows))
            key, bound = local, len(distinct)
        else:
            ids = (
                store.int_ids(distinct) if isinstance(distinct, np.ndarray) else store.ids(distinct)
            )
            gid = ids[local]
            width = len(store.groups)
            event_rows, starts = self._windows(stamps, stream_time)
            if not len(event_rows):
                return _Batch.empty(self, int(stream_time[-1]))
            span = (starts - starts.min()) // self.advance
            spans = int(span.max()) + 1
            if spans * width < 1 << 62:
                key, bound = span * width + gid[event_rows], spans * width
            else:  # too wide to pack into one int64: number the (window, group) pairs
                pairs = np.stack((span, gid[event_rows]), axis=1)
                key = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
                bound = int(key.max()) + 1
        order = stable_order(key, bound)
        sorted_key = key[order]
        seg_starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        seg_lengths = np.diff(np.r_[seg_starts, len(order)]).astype(np.int64)
        first = order[seg_starts]  # each key's first event
        seg_gid = gid[event_rows[first]]
        seg_window = starts[first] if starts is not None else None
        windows = _runs(seg_window, len(seg_gid))
        found, pos, priors = self._priors(seg_gid, seg_window, windows)
        event_frame_rows = rows[event_rows]
        sorted_rows = event_frame_rows[order]
        seg_id = np.repeat(np.arange(len(seg_starts)), seg_lengths)
        segments = Segments(seg_starts, seg_lengths, seg_id)
        columns = self._run_kernels(priors, args, sorted_rows, segments)
        return _Batch(
            self,
            groups,
            seg_gid,
            seg_window,
            windows,
            found,
            pos,
            first,
            order,
            segments,
            columns,
            event_frame_rows,
            starts,
            int(stream_time[-1]),
        )

    def _priors(
        self, gids: IntArray, windows: IntArray | None, runs: list[tuple[int, int]]
    ) -> tuple[np.ndarray, IntArray, list[np.ndarray]]:
        """Each key's slot in its window's block, whether it has one, and its prior state."""
        found_parts: list[np.ndarray] = []
        pos_parts: list[IntArray] = []
        array_parts: list[list[np.ndarray]] = []
        for a, b in runs:
            start = int(windows[a]) if windows is not None else None
            pos, found, arrays = self.store.priors(start, gids[a:b])
            found_parts.append(found)
            pos_parts.append(pos)
            array_parts.append(arrays)
        if len(runs) == 1:
            return found_parts[0], pos_parts[0], array_parts[0]
        arrays = [np.concatenate(p) for p in zip(*array_parts, strict=True)]
        return np.concatenate(found_parts), np.concatenate(pos_parts), arrays

    def _windows(self, stamps: IntArray, stream_time: IntArray) -> tuple[IntArray, IntArray]:
        """Each record's open windows in ascending start order: (record index, start)."""
        window = self.agg.window
        shift = window.offset_ms % self.advance if window is not None else 0
        if not shift:
            return open_windows(stamps, stream_time, self.size, self.advance, self.agg.grace_ms)
        # a window table function's offset: the windows of the times moved back by it
        # (starts from 0, as ksqlDB's), moved forward again
        rows, starts = open_windows(
            stamps - shift, stream_time - shift, self.size, self.advance, self.agg.grace_ms
        )
        return rows, starts + shift


def _having_emits(aggregator: ReferenceState, changes: Changes, passed: np.ndarray) -> np.ndarray:
    """Which changes to send: one failing HAVING deletes its key only if the key's last output
    passed. Updates `aggregator.present`, as the reference's `_emit` does.
    """
    n = len(changes)
    order = np.argsort(changes.key_ids, kind="stable")
    ids = changes.key_ids[order]
    ok = passed[order]
    first = np.ones(n, bool)
    first[1:] = ids[1:] != ids[:-1]
    present = aggregator.present
    before = np.array([bool(present.get(k, False)) for k in changes.keys], bool)
    previous = np.empty(n, bool)
    previous[1:] = ok[:-1]
    previous[first] = before[ids[first]]
    emitted = np.empty(n, bool)
    emitted[order] = ok | previous
    last = np.flatnonzero(np.r_[first[1:], True])
    for i, still in zip(ids[last].tolist(), ok[last].tolist(), strict=True):
        key = changes.keys[i]
        if still:
            present[key] = True
        else:
            present.pop(key, None)
    aggregator.dirty.update(("P", changes.keys[i]) for i in ids[last].tolist())
    return emitted


def _runs(values: IntArray | None, n: int) -> list[tuple[int, int]]:
    """The [a, b) ranges of equal values in a sorted array of n (None: one range)."""
    if values is None:
        return [(0, n)]
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(bounds))


class Prepared(ABC):
    """A batch whose changes are computed, to be applied to the state."""

    stream_time: int  # the stream time after the batch

    @abstractmethod
    def apply(self, aggregator: ReferenceState) -> Changes | None:
        """Store the state after the batch; the changes to emit, in emission order."""


@dataclass
class _Batch(Prepared):
    """A prepared batch: its keys, their prior states and the aggregates' new values."""

    owner: VectorizedAggregator
    groups: list[pa.Array]
    gids: IntArray  # each key's group id
    windows: IntArray | None  # each key's window start
    runs: list[tuple[int, int]]  # the keys of each window
    found: np.ndarray  # whether the key has a slot in its window's block
    pos: IntArray  # ... and where it is (or goes)
    first: IntArray  # each key's first event
    order: IntArray  # the events sorted by key
    segments: Segments | None
    columns: list[KernelColumn]
    rows: IntArray  # each event's row of the frame
    starts: IntArray | None  # each event's window start
    stream_time: int

    @classmethod
    def empty(cls, owner: VectorizedAggregator, stream_time: int) -> _Batch:
        nothing = np.zeros(0, np.int64)
        return cls(
            owner, [], nothing, None, [], nothing.astype(bool), nothing, nothing, nothing, None,
            [], nothing, None, stream_time,
        )  # fmt: skip

    def apply(self, aggregator: ReferenceState) -> Changes | None:
        if self.segments is None:
            return None
        store = self.owner.store
        coalesce = self.owner.coalesce
        segments = self.segments
        finals = [a for c in self.columns for a in c.finals()]
        for a, b in self.runs:
            start = int(self.windows[a]) if self.windows is not None else None
            parts = (self.gids[a:b], self.pos[a:b], self.found[a:b], [f[a:b] for f in finals])
            if isinstance(store, ColumnarStateStore):
                # new keys come in in the order of their first events, as the reference's
                store.put(start, *parts, firsts=self.first[a:b])
            else:
                store.put(start, *parts)
        ends = segments.ends
        if coalesce:
            by_last = np.argsort(self.order[ends], kind="stable")
            picked = ends[by_last]
            results = [c.results(by_last, by_key=True) for c in self.columns]
            key_ids = by_last
        else:
            picked = np.empty(len(self.order), np.int64)
            picked[self.order] = np.arange(len(self.order))
            results = [c.results(picked, by_key=False) for c in self.columns]
            key_ids = segments.ids[picked]
        events = self.order[picked]
        rows = pa.array(self.rows[events])
        owner = self.owner
        window = None
        if self.starts is not None:
            starts = self.starts[events]
            window = (pa.array(starts), pa.array(starts + owner.size))
        return Changes(
            [g.take(rows) for g in self.groups],
            results,
            window,
            results[-1].cast(pa.int64()),  # each key's row time
            key_ids,
            self._keys,
            rows=rows,
        )

    def _keys(self) -> list[Any]:
        store = self.owner.store
        if isinstance(store, KeyedStateStore):
            tuples = store.index.tuples(self.gids)
        else:
            groups = store.groups
            tuples = [groups[g] for g in self.gids.tolist()]
        if self.windows is None:
            return [(t, None) for t in tuples]
        size = self.owner.size
        return [(t, (s, s + size)) for t, s in zip(tuples, self.windows.tolist(), strict=True)]


def _group_ids(
    groups: list[pa.Array], rows: IntArray
) -> tuple[IntArray, list[tuple[Any, ...]] | IntArray]:
    """A dense id for each selected row's group, and each id's group tuple (for one integer
    column, each id's value)."""
    codes: list[IntArray] = []
    values: list[list[Any]] = []
    for g in groups:
        selected = g if len(rows) == len(g) else g.take(pa.array(rows))
        encoded = pc.dictionary_encode(selected)
        codes.append(np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64))
        if len(groups) == 1 and pa.types.is_integer(encoded.dictionary.type):
            return codes[0], np.asarray(encoded.dictionary.to_numpy(), np.int64)
        values.append(encoded.dictionary.to_pylist())
    if len(groups) == 1:
        return codes[0], [(v,) for v in values[0]]
    sizes = [max(len(v), 1) for v in values]
    if np.prod(np.array(sizes, np.float64)) >= 2.0**62:  # too many combinations for one int64
        stacked = np.stack(codes, axis=1)
        unique_rows, inverse = np.unique(stacked, axis=0, return_inverse=True)
        tuples = [
            tuple(v[i] for v, i in zip(values, ids, strict=True)) for ids in unique_rows.tolist()
        ]
        return np.asarray(inverse, np.int64).reshape(-1), tuples
    combined = np.zeros(len(rows), np.int64)
    for c, size in zip(codes, sizes, strict=True):
        combined = combined * size + c
    unique, gid = np.unique(combined, return_inverse=True)
    parts: list[list[int]] = []
    rest = unique
    for size in reversed(sizes):
        parts.append((rest % size).tolist())
        rest = rest // size
    parts.reverse()
    tuples = [
        tuple(v[i] for v, i in zip(values, ids, strict=True)) for ids in zip(*parts, strict=True)
    ]
    return np.asarray(gid, np.int64).reshape(-1), tuples


def _group_columns(groups: list[pa.Array], rows: IntArray) -> tuple[IntArray, list[pa.Array]]:
    """A dense id for each selected row's group, and the distinct groups as one Arrow array
    per group column (no Python object per group)."""
    codes: list[IntArray] = []
    values: list[pa.Array] = []
    for g in groups:
        selected = g if len(rows) == len(g) else g.take(pa.array(rows))
        encoded = pc.dictionary_encode(selected)
        codes.append(np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64))
        values.append(encoded.dictionary)
    if len(groups) == 1:
        return codes[0], values
    sizes = [max(len(v), 1) for v in values]
    if np.prod(np.array(sizes, np.float64)) >= 2.0**62:  # too many combinations for one int64
        unique_rows, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        columns = [v.take(pa.array(unique_rows[:, i])) for i, v in enumerate(values)]
        return np.asarray(inverse, np.int64).reshape(-1), columns
    combined = np.zeros(len(rows), np.int64)
    for c, size in zip(codes, sizes, strict=True):
        combined = combined * size + c
    unique, gid = np.unique(combined, return_inverse=True)
    parts: list[IntArray] = []
    rest = unique
    for size in reversed(sizes):
        parts.append(rest % size)
        rest = rest // size
    parts.reverse()
    columns = [v.take(pa.array(p)) for v, p in zip(values, parts, strict=True)]
    return np.asarray(gid, np.int64).reshape(-1), columns


# -- aggregate kernels -----------------------------------------------------------------------


__all__ = ["FastPath", "ReferenceState", "VectorizedAggregator"]
