"""GROUP BY over a stream, a whole batch at a time: the fast path beside the reference.

`Aggregator.process_records` (runtime/aggregate.py) walks the records one by one; this module
computes the same changes with numpy: the batch's (window, group) events are sorted by key
(stably, so each key keeps its records' order) and every aggregate becomes a cumulative
computation per key, seeded with the state the key had before the batch. With the record cache
off (ksqlDB's `ksql.streams.cache.max.bytes.buffering` = 0) every event is a change, in record
order and, for one record, in window order, exactly as the reference path emits them;
otherwise only each key's last change of the batch is emitted (DESIGN.md, decision 3), and
only each key's final state is computed.

The state between batches is a `ColumnarStateStore` (runtime/_state_columns.py): the reference
path's states as numpy columns, one block per window. A batch the reference path runs gets
them as the reference's dict and gives them back after (`Aggregator.process_records`).

Exactness: floating-point sums are accumulated in record order (`ufunc.accumulate` and a loop
over ranks, never a pairwise reduction); integer sums wrap as the aggregates do. A batch whose
values would make the two paths differ (a NaN or a negative zero reaching MIN or MAX, a BIGINT
average whose total could leave 64 bits) is refused before anything is changed, and the caller
runs the reference path on it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregates import Aggregate, Avg, Count, Max, Min, Sum
from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch
from hispeed.plan.model import AggregateCall, QueryPlan, field_name
from hispeed.runtime._state_columns import ColumnarStateStore, StateLayout
from hispeed.runtime.decode import frame_headers

if TYPE_CHECKING:
    from hispeed.runtime.aggregate import Aggregator, Change
    from hispeed.runtime.task import Outputs

_KEY_TYPES = frozenset({"BOOLEAN", "INTEGER", "BIGINT", "STRING"})
_NUMERIC = frozenset({"INTEGER", "BIGINT", "DOUBLE"})
_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)

IntArray = np.ndarray[Any, Any]  # int64, by convention
Ufunc = np.ufunc


@dataclass
class Changes:
    """A batch's changes, as columns: what the reference path's list of `Change` holds."""

    groups: list[pa.Array]  # one per GROUP BY expression
    results: list[pa.Array]  # one per state call (the row time's last)
    window: tuple[pa.Array, pa.Array] | None  # start and end, for a windowed query
    timestamps: pa.Array
    key_ids: IntArray  # each change's index in `keys`
    #: the (group, window) keys the changes are for, built when asked (HAVING needs them)
    make_keys: Callable[[], list[Any]] = field(repr=False)
    #: which changes delete their key (a merged-away session); None: none does
    deleted: np.ndarray | None = None
    #: each change's record: its row of the batch's frame (whose headers the change carries)
    rows: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.timestamps)

    @cached_property
    def keys(self) -> list[Any]:
        return self.make_keys()

    def to_list(self) -> list[Change]:
        """The changes as the reference path's `Change` objects (for tests and debugging)."""
        from hispeed.runtime.aggregate import Change

        groups = list(zip(*(g.to_pylist() for g in self.groups), strict=True))
        results = [r.to_pylist() for r in self.results]
        windows: list[tuple[int, int] | None] = (
            list(zip(self.window[0].to_pylist(), self.window[1].to_pylist(), strict=True))
            if self.window is not None
            else [None] * len(self)
        )
        deleted = self.deleted.tolist() if self.deleted is not None else [False] * len(self)
        return [
            Change(group, window, None if deleted[i] else [r[i] for r in results], ts)
            for i, (group, window, ts) in enumerate(
                zip(groups, windows, self.timestamps.to_pylist(), strict=True)
            )
        ]


@dataclass
class _Selection:
    """The records of a batch that count, and what they evaluate to."""

    groups: list[pa.Array]  # the GROUP BY values (of every row of the frame)
    args: list[list[pa.Array]]  # each call's arguments (likewise)
    rows: IntArray  # the rows that count
    stamps: IntArray  # their timestamps
    stream_time: IntArray  # the stream time each of them sees
    local: IntArray  # their groups' indexes in `distinct`
    #: the distinct groups: tuples, or for one integer column the values (no Python objects)
    distinct: list[tuple[Any, ...]] | IntArray

    @cached_property
    def tuples(self) -> list[tuple[Any, ...]]:
        """The distinct groups as the reference's tuples."""
        if isinstance(self.distinct, np.ndarray):
            return [(v,) for v in self.distinct.tolist()]
        return self.distinct


class _RefusedError(Exception):
    """This batch needs the reference path (raised before any state changes)."""


class FastPath(ABC):
    """What the vectorized paths share: the plan's kernels, the selection of a batch's records
    and the output of changes. `supports` and `process` are each path's."""

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        assert self.supports(plan)
        agg = plan.aggregation
        assert agg is not None
        self.plan = plan
        self.agg = agg
        self.coalesce = coalesce
        #: one per state call: the query's calls', then the row time's
        self.kernels = [_kernel(call) for call in agg.state_calls]

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        """Whether this path runs the plan: here, what all paths need."""
        agg = plan.aggregation
        if agg is None or plan.source.kind != "STREAM" or plan.emit == "FINAL":
            return False
        if not all(c.type is not None and c.type.name in _KEY_TYPES for c in agg.group_exprs):
            return False
        return all(_supported_call(call) for call in agg.calls)

    @classmethod
    def build(cls, plan: QueryPlan, *, coalesce: bool) -> Self | None:
        """The fast path for this plan, or None if it does not support the plan."""
        return cls(plan, coalesce=coalesce) if cls.supports(plan) else None

    def process(
        self,
        aggregator: Aggregator,
        frame: pa.RecordBatch,
        partition: int,
        item: PolledBatch,
        out: Outputs,
    ) -> bool:
        """Do all that `aggregator.process` does for this batch; False if it must do it itself
        (then nothing has changed)."""
        task = aggregator.task
        ctx = EvalContext()
        seed = task.stream_time.get(partition, 0)
        try:
            batch = self._prepare(aggregator, frame, seed, ctx)
        except _RefusedError:
            return False
        task._report(ctx, item, out, frame)
        changes = batch.apply(aggregator) if batch is not None else None
        task.stream_time[partition] = max(seed, batch.stream_time if batch is not None else seed)
        self._evict(aggregator, partition)
        if changes is not None and len(changes):
            headers = frame_headers(frame, self.plan.label)
            if headers is not None and changes.rows is not None:
                # a change carries the headers of the record that made it, as Kafka Streams'
                # aggregations forward the current record's (and its cache, the last one's)
                headers = headers.take(changes.rows)
            else:
                headers = None
            self.emit(aggregator, changes, out, headers)
        aggregator.checkpoint(out)
        return True

    @abstractmethod
    def _prepare(
        self, aggregator: Aggregator, frame: pa.RecordBatch, seed: int, ctx: EvalContext
    ) -> Prepared | None:
        """Compute the batch's changes without changing any state (None: no record counts);
        raise `_RefusedError` for a batch the reference path must run."""

    @abstractmethod
    def _evict(self, aggregator: Aggregator, partition: int) -> None:
        """Forget the windows that can no longer change."""

    def _select(self, frame: pa.RecordBatch, seed: int, ctx: EvalContext) -> _Selection | None:
        """Evaluate the batch's expressions for the records that count (they pass WHERE and
        have no NULL group), or None if none does."""
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
        # stream time as each record sees it: it advances record by record
        stream_time = np.maximum.accumulate(np.maximum(stamps, seed))
        local, tuples = _group_ids(groups, rows)
        return _Selection(groups, args, rows, stamps, stream_time, local, tuples)

    def _run_kernels(
        self,
        priors: list[np.ndarray],
        args: list[list[pa.Array]],
        rows: IntArray,
        segments: _Segments,
    ) -> list[_Column]:
        """Each call's values over the sorted events (`rows` of the frame), from the keys'
        prior states (the kernels' arrays, one after the other)."""
        columns: list[_Column] = []
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
        aggregator: Aggregator,
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
        emit_windowed(aggregator, keys, values, stamps, deleted, out, window, headers)


Rows = tuple[list[pa.Array], list[pa.Array], pa.Array, np.ndarray, tuple[pa.Array, pa.Array] | None]


def only_rows(
    mask: np.ndarray,
    keys: list[pa.Array],
    values: list[pa.Array],
    stamps: pa.Array,
    deleted: np.ndarray,
    window: tuple[pa.Array, pa.Array] | None,
) -> Rows:
    """The output rows where `mask` is True: keys, values, timestamps, deletions, window."""
    selected = pa.array(mask)
    return (
        [pc.filter(k, selected) for k in keys],
        [pc.filter(v, selected) for v in values],
        pc.filter(stamps, selected),
        deleted[mask],
        None if window is None else (window[0].filter(selected), window[1].filter(selected)),
    )


class VectorizedAggregator(FastPath):
    """Run `Aggregator.process` for whole batches of a stream: no window, TUMBLING or HOPPING.

    `build(plan, coalesce=...)` returns None for a query this path does not run (a table
    source, session windows, EMIT FINAL, other aggregates, group keys other than BOOLEAN,
    INTEGER, BIGINT or STRING). `process` returns False, having changed nothing, for a batch
    the reference path must run.
    """

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        super().__init__(plan, coalesce=coalesce)
        window = self.agg.window
        self.size = window.size_ms if window is not None else 0
        self.advance = (window.advance_ms or window.size_ms) if window is not None else 0
        #: the state between batches
        self.store = ColumnarStateStore(self.kernels, self.size if window is not None else None)

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        agg = plan.aggregation
        if not FastPath.supports(plan) or agg is None:
            return False
        if agg.window is not None and agg.window.kind not in ("TUMBLING", "HOPPING"):
            return False
        return agg.window is None or (agg.window.advance_ms or agg.window.size_ms) > 0

    # -- processing -------------------------------------------------------------------------

    def _evict(self, aggregator: Aggregator, partition: int) -> None:
        self.store.evict(aggregator.horizon())

    def _prepare(
        self, aggregator: Aggregator, frame: pa.RecordBatch, seed: int, ctx: EvalContext
    ) -> _Batch | None:
        """Evaluate the batch's expressions and key its events (the order `process` uses)."""
        selected = self._select(frame, seed, ctx)
        if selected is None:
            return None
        groups, args, rows, stamps = selected.groups, selected.args, selected.rows, selected.stamps
        stream_time, local = selected.stream_time, selected.local
        store = self.store
        distinct = selected.distinct
        ids = store.int_ids(distinct) if isinstance(distinct, np.ndarray) else store.ids(distinct)
        gid = ids[local]
        width = len(store.groups)
        starts: IntArray | None = None
        if self.agg.window is None:
            event_rows = np.arange(len(rows))
            key, bound = gid, width
        else:
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
        order = _stable_order(key, bound)
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
        segments = _Segments(seg_starts, seg_lengths, seg_id)
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
        size, advance = self.size, self.advance
        most = -(-size // advance)
        first = stamps - stamps % advance
        # column j holds the window (most - 1 - j) advances before the first: ascending starts
        back = np.arange(most - 1, -1, -1, dtype=np.int64) * advance
        starts = first[:, None] - back[None, :]
        valid = (starts > (stamps - size)[:, None]) & (starts >= 0)
        grace = self.agg.grace_ms
        valid &= (starts + size + grace) > stream_time[:, None]  # later: the window has closed
        record, j = np.nonzero(valid)
        return record.astype(np.int64), starts[record, j]


def emit_windowed(
    aggregator: Aggregator,
    keys: list[pa.Array],
    values: list[pa.Array],
    stamps: pa.Array,
    deleted: np.ndarray,
    out: Outputs,
    window: tuple[pa.Array, pa.Array] | None,
    headers: pa.Array | None = None,
) -> None:
    """`QueryTask.emit`, with the window appended to the keys by Arrow instead of per row."""
    task = aggregator.task
    before = len(out.keys)
    task.emit(keys, values, stamps, deleted, out, headers=headers)
    if window is None or len(out.keys) == before:
        return
    sink_window = task.sink.window
    ends = window[1] if sink_window is not None and sink_window.kind == "SESSION" else None
    out.keys[-1] = with_window_suffix(out.keys[-1], window[0], ends)


def with_window_suffix(keys: pa.Array, starts: pa.Array, ends: pa.Array | None) -> pa.Array:
    """Kafka Streams' windowed key layout: each key, then its window's start as an 8-byte
    big-endian integer (and its end, for sessions), as `task.window_suffix` builds it."""
    parts = [starts] if ends is None else [starts, ends]
    n = len(keys)
    columns = [np.asarray(p.to_numpy(zero_copy_only=False), np.int64) for p in parts]
    raw = np.stack(columns, axis=1).astype(">i8")
    width = 8 * len(parts)
    suffix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(raw.tobytes())]
    ).cast(pa.binary())
    joined = pc.binary_join_element_wise(keys.fill_null(b""), suffix, b"")
    return joined.cast(pa.binary())


def _having_emits(aggregator: Aggregator, changes: Changes, passed: np.ndarray) -> np.ndarray:
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


@dataclass
class _Segments:
    """Events sorted by key: where each key's run starts, its length, and each event's key."""

    starts: IntArray
    lengths: IntArray
    ids: IntArray

    @property
    def ends(self) -> IntArray:
        return self.starts + self.lengths - 1

    def ranks(self) -> IntArray:
        """Each event's position within its key's run (0 for the first)."""
        out: IntArray = np.arange(len(self.ids)) - self.starts[self.ids]
        return out

    def reduce(self, ufunc: Ufunc, values: np.ndarray) -> np.ndarray:
        """Per key: ufunc over its events (for integers and ufuncs whose order cannot matter)."""
        out: np.ndarray = ufunc.reduceat(values, self.starts)
        return out

    def cumsum(self, values: IntArray) -> IntArray:
        """Per-key running sums of int64 values (wrapping, as the integer aggregates do)."""
        total = np.cumsum(values, dtype=np.int64)
        base = np.concatenate(([0], total[self.starts[1:] - 1])).astype(np.int64)
        out: IntArray = total - base[self.ids]
        return out

    def accumulate(self, ufunc: Ufunc, values: np.ndarray, init: np.ndarray) -> np.ndarray:
        """Per key: out[i] = ufunc(out[i - 1], values[i]), from init, strictly in order.

        Short runs advance together, one rank per numpy call; once few runs remain, each is
        accumulated on its own. Either way every step is one ufunc application, so floating
        point results equal a Python loop's.
        """
        out = np.empty_like(values)
        if not len(values):
            return out
        with np.errstate(all="ignore"):  # inf - inf is NaN here, as in a Python loop
            return self._accumulate(ufunc, values, init, out)

    def _accumulate(
        self, ufunc: Ufunc, values: np.ndarray, init: np.ndarray, out: np.ndarray
    ) -> np.ndarray:
        by_length = np.argsort(-self.lengths, kind="stable")
        lengths = self.lengths[by_length]
        starts = self.starts[by_length]
        acc = np.array(init[by_length], dtype=values.dtype)
        negative = -lengths
        longest = int(lengths[0])
        rank = 0
        while rank < longest:
            live = int(np.searchsorted(negative, -rank, side="left"))  # runs longer than rank
            if live <= 2 * (longest - rank):
                for i in range(live):
                    a = int(starts[i]) + rank
                    b = int(starts[i] + lengths[i])
                    run = ufunc.accumulate(np.concatenate((acc[i : i + 1], values[a:b])))
                    out[a:b] = run[1:]
                break
            pos = starts[:live] + rank
            acc[:live] = ufunc(acc[:live], values[pos])
            out[pos] = acc[:live]
            rank += 1
        return out


def _runs(values: IntArray | None, n: int) -> list[tuple[int, int]]:
    """The [a, b) ranges of equal values in a sorted array of n (None: one range)."""
    if values is None:
        return [(0, n)]
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    bounds = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(bounds))


def _stable_order(key: IntArray, bound: int) -> IntArray:
    """`np.argsort(key, kind="stable")` for keys in [0, bound): radix passes of 16 bits."""
    if bound <= 1 << 16:
        order: IntArray = np.argsort(key.astype(np.uint16), kind="stable")
        return order
    if bound <= 1 << 32:
        low = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
        high = np.argsort((key[low] >> 16).astype(np.uint16), kind="stable")
        out: IntArray = low[high]
        return out
    return np.argsort(key, kind="stable")


class Prepared(ABC):
    """A batch whose changes are computed, to be applied to the state."""

    stream_time: int  # the stream time after the batch

    @abstractmethod
    def apply(self, aggregator: Aggregator) -> Changes | None:
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
    segments: _Segments | None
    columns: list[_Column]
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

    def apply(self, aggregator: Aggregator) -> Changes | None:
        if self.segments is None:
            return None
        store = self.owner.store
        coalesce = self.owner.coalesce
        segments = self.segments
        finals = [a for c in self.columns for a in c.finals()]
        for a, b in self.runs:
            start = int(self.windows[a]) if self.windows is not None else None
            store.put(
                start, self.gids[a:b], self.pos[a:b], self.found[a:b], [f[a:b] for f in finals]
            )
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
        groups = self.owner.store.groups
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


# -- aggregate kernels -----------------------------------------------------------------------


def _supported_call(call: AggregateCall) -> bool:
    logic = call.logic
    kind = type(logic)
    if kind is Count:
        return len(call.args) <= 1
    if kind in (Sum, Avg, Min, Max):
        return len(call.args) == 1 and logic.arg_types[0].name in _NUMERIC
    return False


class _Column:
    """One aggregate call's values over a batch: per sorted event, or per key (`per_event`
    False: only each key's final value, when no event's own result is asked for).

    `arrays` are the state's arrays (as the kernel's `dtypes`); `result` makes the aggregate's
    result from them, at the positions asked.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        result: Callable[[list[np.ndarray]], pa.Array],
        segments: _Segments,
        per_event: bool,
    ) -> None:
        self.arrays = arrays
        self.result = result
        self.segments = segments
        self.per_event = per_event

    def finals(self) -> list[np.ndarray]:
        """Each key's state after the batch, as the store's arrays."""
        if not self.per_event:
            return self.arrays
        ends = self.segments.ends
        return [a[ends] for a in self.arrays]

    def results(self, index: IntArray, *, by_key: bool) -> pa.Array:
        """The aggregate's results for the keys `index` (after their last events) if `by_key`,
        else after the sorted events `index` (then the kernel ran per event)."""
        if by_key and self.per_event:
            index = self.segments.ends[index]
        return self.result([a[index] for a in self.arrays])


class _Kernel(StateLayout):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        self.logic = logic
        self.arrow = arrow
        self.arg_type = logic.arg_types[0].name if logic.arg_types else "BIGINT"
        self.floating = self.arg_type == "DOUBLE"

    @abstractmethod
    def run(
        self,
        prior: list[np.ndarray],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
        running: bool,
    ) -> _Column:
        """The call's values over the sorted events, from each key's prior state's arrays:
        per event if `running`, else per key (or per event, when that is how it computes)."""

    def _numbers(self, arrays: list[np.ndarray]) -> pa.Array:
        values = arrays[0]
        if pa.types.is_int32(self.arrow):
            values = values.astype(np.int32)
        return pa.array(values, self.arrow)


def _kernel(call: AggregateCall) -> _Kernel:
    arrow = call.column.type.to_arrow()
    kind = type(call.logic)
    if kind is Count:
        return _CountKernel(call.logic, arrow)
    if kind is Sum:
        return _SumKernel(call.logic, arrow)
    if kind is Avg:
        return _AvgKernel(call.logic, arrow)
    return _ExtremeKernel(call.logic, arrow)


def _valid(arg: pa.Array, rows: IntArray) -> np.ndarray:
    if not arg.null_count:
        return np.ones(len(rows), bool)
    return np.asarray(arg.is_valid().to_numpy(zero_copy_only=False))[rows]


def _values(arg: pa.Array, rows: IntArray, dtype: type[Any], fill: Any) -> np.ndarray:
    if arg.null_count:
        arg = pc.fill_null(arg, pa.scalar(fill, arg.type))
    return np.asarray(arg.to_numpy(zero_copy_only=False), dtype)[rows]


def _ints(states: Sequence[Any]) -> np.ndarray | None:
    """Python ints as int64, or None if one does not fit."""
    try:
        return np.array(states, np.int64)
    except OverflowError:
        return None


def _counts(
    prior: np.ndarray, ones: np.ndarray | None, segments: _Segments, running: bool
) -> np.ndarray:
    """Prior counts plus the events counted (`ones`; None: every event), per event or per key."""
    if running:
        step = segments.cumsum(ones) if ones is not None else segments.ranks() + 1
        out: np.ndarray = prior[segments.ids] + step
        return out
    added = segments.reduce(np.add, ones) if ones is not None else segments.lengths
    total: np.ndarray = prior + added
    return total


class _CountKernel(_Kernel):
    dtypes = (np.int64,)

    def fill(self) -> tuple[Any, ...]:
        return (0,)

    def to_python(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        out: list[Any] = arrays[0].tolist()
        return out

    def from_python(self, states: Sequence[Any]) -> list[np.ndarray] | None:
        counts = _ints(states)
        return None if counts is None else [counts]

    def run(
        self,
        prior: list[np.ndarray],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
        running: bool,
    ) -> _Column:
        ones = _valid(args[0], rows).astype(np.int64) if args else None
        return _Column(
            [_counts(prior[0], ones, segments, running)], self._numbers, segments, running
        )


class _SumKernel(_Kernel):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        super().__init__(logic, arrow)
        self.dtypes = (np.float64,) if self.floating else (np.int64,)

    def fill(self) -> tuple[Any, ...]:
        return (0.0,) if self.floating else (0,)

    def to_python(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        out: list[Any] = arrays[0].tolist()
        return out

    def from_python(self, states: Sequence[Any]) -> list[np.ndarray] | None:
        if self.floating:
            return [np.array(states, np.float64)]
        sums = _ints(states)
        return None if sums is None else [sums]

    def run(
        self,
        prior: list[np.ndarray],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
        running: bool,
    ) -> _Column:
        if self.floating:
            # a NULL adds 0.0, which leaves any sum but -0.0 unchanged; a sum from 0.0 never is
            values = _values(args[0], rows, np.float64, 0.0)
            sums = segments.accumulate(np.add, values, prior[0])
            return _Column([sums], self._numbers, segments, True)
        values = _values(args[0], rows, np.int64, 0)
        if running:
            sums = prior[0][segments.ids] + segments.cumsum(values)
        else:
            sums = prior[0] + segments.reduce(np.add, values)
        if self.arg_type == "INTEGER":
            sums = sums.astype(np.int32).astype(np.int64)  # wraps as _wrap32
        return _Column([sums], self._numbers, segments, running)


class _AvgKernel(_Kernel):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        super().__init__(logic, arrow)
        self.dtypes = (np.float64 if self.floating else np.int64, np.int64)

    def fill(self) -> tuple[Any, ...]:
        return (0.0 if self.floating else 0, 0)

    def to_python(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        totals = arrays[0].tolist()
        counts = arrays[1].tolist()
        # the state holds int 0 until a value arrives, as Avg.init
        return [(t, c) if c else (0, 0) for t, c in zip(totals, counts, strict=True)]

    def from_python(self, states: Sequence[Any]) -> list[np.ndarray] | None:
        counts = _ints([c for _, c in states])
        if self.floating:
            totals: np.ndarray | None = np.array([t for t, _ in states], np.float64)
        else:
            totals = _ints([t for t, _ in states])
        return None if totals is None or counts is None else [totals, counts]

    def run(
        self,
        prior: list[np.ndarray],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
        running: bool,
    ) -> _Column:
        valid = _valid(args[0], rows).astype(np.int64)
        if self.floating:
            values = _values(args[0], rows, np.float64, 0.0)
            totals = segments.accumulate(np.add, values, prior[0])
            counts = _counts(prior[1], valid, segments, True)
            return _Column([totals, counts], _means, segments, True)
        # Python's total is unbounded: refuse a batch whose running total could overflow
        values = _values(args[0], rows, np.int64, 0)
        if len(values) and (int(values.min()) == _INT64_MIN):
            raise _RefusedError
        largest = max(int(prior[0].max(initial=0)), -int(prior[0].min(initial=0)))
        if largest + int(np.abs(values).max(initial=0)) * len(values) > _INT64_MAX:
            raise _RefusedError
        if running:
            totals = prior[0][segments.ids] + segments.cumsum(values)
        else:
            totals = prior[0] + segments.reduce(np.add, values)
        counts = _counts(prior[1], valid, segments, running)
        return _Column([totals, counts], _means, segments, running)


def _means(arrays: list[np.ndarray]) -> pa.Array:
    totals = arrays[0].astype(np.float64)
    counts = arrays[1]
    means = np.zeros(len(counts), np.float64)
    with np.errstate(all="ignore"):  # inf / n and nan as a Python loop gives them
        np.divide(totals, counts, out=means, where=counts != 0)
    return pa.array(means, pa.float64())


class _ExtremeKernel(_Kernel):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        super().__init__(logic, arrow)
        self.smallest = isinstance(logic, Min)
        self.dtypes = (np.float64 if self.floating else np.int64, np.bool_)

    def fill(self) -> tuple[Any, ...]:
        return (0.0 if self.floating else 0, False)

    def to_python(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        values = arrays[0].tolist()
        seen = arrays[1].tolist()
        return [v if s else None for v, s in zip(values, seen, strict=True)]

    def from_python(self, states: Sequence[Any]) -> list[np.ndarray] | None:
        seen = np.array([s is not None for s in states], bool)
        fill = 0.0 if self.floating else 0
        plain = [fill if s is None else s for s in states]
        values = np.array(plain, np.float64) if self.floating else _ints(plain)
        return None if values is None else [values, seen]

    def run(
        self,
        prior: list[np.ndarray],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
        running: bool,
    ) -> _Column:
        valid = _valid(args[0], rows)
        dtype: type[Any]
        if self.floating:
            dtype = np.float64
            identity: Any = np.inf if self.smallest else -np.inf
        else:
            dtype = np.int64
            identity = _INT64_MAX if self.smallest else _INT64_MIN
        values = _values(args[0], rows, dtype, 0)
        values = np.where(valid, values, identity).astype(dtype)
        seen_before = prior[1]
        start = np.where(seen_before, prior[0], identity).astype(dtype)
        if self.floating:
            # min() keeps the first of equals and does not propagate a later NaN; numpy's
            # minimum does neither, so such batches take the reference path
            for a in (values, start):
                if np.isnan(a).any() or (np.signbit(a) & (a == 0)).any():
                    raise _RefusedError
        ufunc = np.minimum if self.smallest else np.maximum
        counted = valid.astype(np.int64)
        if running:
            extremes = segments.accumulate(ufunc, values, start)
            seen = seen_before[segments.ids] | (segments.cumsum(counted) > 0)
        else:
            extremes = ufunc(start, segments.reduce(ufunc, values))
            seen = seen_before | (segments.reduce(np.add, counted) > 0)
        return _Column([extremes, seen], self._extremes, segments, running)

    def _extremes(self, arrays: list[np.ndarray]) -> pa.Array:
        values, seen = arrays
        if pa.types.is_int32(self.arrow):
            values = values.astype(np.int32)
        return pa.array(values, self.arrow, mask=~seen)


__all__ = [
    "Changes",
    "FastPath",
    "VectorizedAggregator",
    "emit_windowed",
    "only_rows",
    "with_window_suffix",
]
