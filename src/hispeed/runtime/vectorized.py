"""GROUP BY over a stream, a whole batch at a time: the fast path beside the reference.

`Aggregator.process` (runtime/aggregate.py) walks the records one by one; this module computes
the same changes with numpy: the batch's (group, window) events are sorted by key (stably, so
each key keeps its records' order) and every aggregate becomes a cumulative computation per
key, seeded with the state the key had before the batch. With the record cache off (ksqlDB's
`ksql.streams.cache.max.bytes.buffering` = 0) every event is a change, in record order and, for
one record, in window order, exactly as the reference path emits them; otherwise only each
key's last change of the batch is emitted (DESIGN.md, decision 3).

The state between batches is the reference path's own: `Aggregator.states` maps (group tuple,
window tuple or None) to a list of states in each aggregate class's representation, so the two
paths interleave batch by batch and checkpoints are unchanged.

Exactness: floating-point sums are accumulated in record order (`ufunc.accumulate` and a loop
over ranks, never a pairwise reduction); integer sums wrap as the aggregates do. A batch whose
values would make the two paths differ (a NaN or a negative zero reaching MIN or MAX, a BIGINT
average whose total could leave 64 bits) is refused before anything is changed, and the caller
runs the reference path on it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregates import Aggregate, Avg, Count, Max, Min, Sum
from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch
from hispeed.plan.planner import AggregateCall, QueryPlan, field_name

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
    results: list[pa.Array]  # one per aggregate call
    window: tuple[pa.Array, pa.Array] | None  # start and end, for a windowed query
    timestamps: pa.Array
    keys: list[Any]  # the (group, window) keys of `Aggregator.states` the changes are for
    key_ids: IntArray  # each change's index in `keys`

    def __len__(self) -> int:
        return len(self.timestamps)

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
        return [
            Change(group, window, [r[i] for r in results], ts)
            for i, (group, window, ts) in enumerate(
                zip(groups, windows, self.timestamps.to_pylist(), strict=True)
            )
        ]


class _RefusedError(Exception):
    """This batch needs the reference path (raised before any state changes)."""


class VectorizedAggregator:
    """Run `Aggregator.process` for whole batches of a stream: no window, TUMBLING or HOPPING.

    `build(plan, coalesce=...)` returns None for a query this path does not run (a table
    source, session windows, EMIT FINAL, other aggregates, group keys other than BOOLEAN,
    INTEGER, BIGINT or STRING). `process` returns False, having changed nothing, for a batch
    the reference path must run.
    """

    def __init__(self, plan: QueryPlan, *, coalesce: bool = False) -> None:
        assert self.supports(plan)
        agg = plan.aggregation
        assert agg is not None
        self.plan = plan
        self.agg = agg
        self.coalesce = coalesce
        window = agg.window
        self.size = window.size_ms if window is not None else 0
        self.advance = (window.advance_ms or window.size_ms) if window is not None else 0
        self.kernels = [_kernel(call) for call in agg.calls]

    @staticmethod
    def supports(plan: QueryPlan) -> bool:
        agg = plan.aggregation
        if agg is None or plan.source.kind != "STREAM" or plan.emit == "FINAL":
            return False
        if agg.window is not None and agg.window.kind not in ("TUMBLING", "HOPPING"):
            return False
        if agg.window is not None and (agg.window.advance_ms or agg.window.size_ms) <= 0:
            return False
        if not all(c.type is not None and c.type.name in _KEY_TYPES for c in agg.group_exprs):
            return False
        return all(_supported_call(call) for call in agg.calls)

    @classmethod
    def build(cls, plan: QueryPlan, *, coalesce: bool) -> VectorizedAggregator | None:
        """The fast path for this plan, or None if it does not support the plan."""
        return cls(plan, coalesce=coalesce) if cls.supports(plan) else None

    # -- processing -------------------------------------------------------------------------

    def process(
        self,
        aggregator: Aggregator,
        frame: pa.RecordBatch,
        partition: int,
        item: PolledBatch,
        out: Outputs,
    ) -> bool:
        """Do all that `aggregator.process` does for this batch; False if it must do it itself."""
        task = aggregator.task
        ctx = EvalContext()
        try:
            batch = self._prepare(aggregator, frame, partition, ctx)
        except _RefusedError:
            return False
        task._report(ctx, item, out, frame)
        changes = batch.apply(aggregator, self.coalesce) if batch is not None else None
        seed = task.stream_time.get(partition, 0)
        newest = batch.stream_time if batch is not None else seed
        task.stream_time[partition] = max(seed, newest)
        aggregator._evict(partition)
        if changes is not None and len(changes):
            self.emit(aggregator, changes, out)
        _checkpoint(aggregator, out)
        return True

    def _prepare(
        self, aggregator: Aggregator, frame: pa.RecordBatch, partition: int, ctx: EvalContext
    ) -> _Batch | None:
        """Evaluate the batch's expressions and key its events (the order `process` uses)."""
        plan = self.plan
        n = frame.num_rows
        keep = np.ones(n, bool)
        if plan.where is not None:
            keep &= np.asarray(
                pc.fill_null(plan.where(frame, ctx), False).to_numpy(zero_copy_only=False)
            )
        groups = [g(frame, ctx) for g in self.agg.group_exprs]
        args = [[a(frame, ctx) for a in call.args] for call in self.agg.calls]
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
        seed = aggregator.task.stream_time.get(partition, 0)
        # stream time as each record sees it: it advances record by record
        stream_time = np.maximum.accumulate(np.maximum(stamps, seed))
        gid, group_keys = _group_ids(groups, rows)
        if self.agg.window is None:
            event_rows = np.arange(len(rows))
            starts: IntArray | None = None
            key = gid
        else:
            event_rows, starts = self._windows(stamps, stream_time)
            if not len(event_rows):
                return _Batch.empty(self, int(stream_time[-1]))
            span = (starts - starts.min()) // self.advance
            spans = int(span.max()) + 1
            if len(group_keys) * spans < 1 << 62:
                key = gid[event_rows] * spans + span
            else:  # too wide to pack into one int64: number the (group, window) pairs
                pairs = np.stack((gid[event_rows], span), axis=1)
                key = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        bounds = np.flatnonzero(np.diff(sorted_key)) + 1
        seg_starts = np.concatenate(([0], bounds)).astype(np.int64)
        seg_lengths = np.diff(np.concatenate((seg_starts, [len(order)]))).astype(np.int64)
        first = order[seg_starts]  # each key's first event
        seg_gid = gid[event_rows[first]]
        windows: list[Any]
        if starts is None:
            windows = [None] * len(seg_starts)
        else:
            windows = [(s, s + self.size) for s in starts[first].tolist()]
        keys = [(group_keys[g], w) for g, w in zip(seg_gid.tolist(), windows, strict=True)]
        priors = [aggregator.states.get(k) for k in keys]
        event_frame_rows = rows[event_rows]
        sorted_rows = event_frame_rows[order]
        seg_id = np.repeat(np.arange(len(seg_starts)), seg_lengths)
        segments = _Segments(seg_starts, seg_lengths, seg_id)
        columns = [
            kernel.run(
                [p[j] if p is not None else None for p in priors], call_args, sorted_rows, segments
            )
            for j, (kernel, call_args) in enumerate(zip(self.kernels, args, strict=True))
        ]
        return _Batch(
            self,
            groups,
            keys,
            first,
            order,
            segments,
            columns,
            event_frame_rows,
            starts,
            stamps[event_rows],
            int(stream_time[-1]),
        )

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

    # -- output -----------------------------------------------------------------------------

    def emit(self, aggregator: Aggregator, changes: Changes, out: Outputs) -> None:
        """Compute the select list and HAVING over the changes and encode them (as `_emit`)."""
        agg = self.agg
        arrays: list[pa.Array] = []
        names: list[str] = []
        for col, values in zip(agg.group_columns, changes.groups, strict=True):
            arrow = col.type.to_arrow()
            arrays.append(values if values.type == arrow else values.cast(arrow))
            names.append(col.field)
        for call, values in zip(agg.calls, changes.results, strict=True):
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
        deleted = np.zeros(len(changes), bool)
        if plan.having is not None:
            passed = np.asarray(
                pc.fill_null(plan.having(post, ctx), False).to_numpy(zero_copy_only=False)
            )
            deleted = ~passed
            emitted = _having_emits(aggregator, changes, passed)
            if not emitted.all():
                if not emitted.any():
                    return
                mask = pa.array(emitted)
                keys = [pc.filter(k, mask) for k in keys]
                values = [pc.filter(v, mask) for v in values]
                stamps = pc.filter(stamps, mask)
                deleted = deleted[emitted]
                if window is not None:
                    window = (pc.filter(window[0], mask), pc.filter(window[1], mask))
        aggregator.task.emit(keys, values, stamps, deleted, out, window=window)


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


class _Batch:
    """A prepared batch: its keys, their prior states and every event's running results."""

    def __init__(
        self,
        owner: VectorizedAggregator,
        groups: list[pa.Array],
        keys: list[Any],
        first: IntArray,
        order: IntArray,
        segments: _Segments | None,
        columns: list[_Column],
        rows: IntArray,
        starts: IntArray | None,
        stamps: IntArray,
        stream_time: int,
    ) -> None:
        self.owner = owner
        self.groups = groups
        self.keys = keys
        self.first = first
        self.order = order
        self.segments = segments
        self.columns = columns
        self.rows = rows
        self.starts = starts
        self.stamps = stamps
        self.stream_time = stream_time

    @classmethod
    def empty(cls, owner: VectorizedAggregator, stream_time: int) -> _Batch:
        nothing = np.zeros(0, np.int64)
        return cls(owner, [], [], nothing, nothing, None, [], nothing, None, nothing, stream_time)

    def apply(self, aggregator: Aggregator, coalesce: bool) -> Changes | None:
        """Store each key's state after the batch; the changes to emit, in emission order."""
        if self.segments is None:
            return None
        segments = self.segments
        ends = segments.ends
        finals = [c.finals(ends) for c in self.columns]
        # new keys enter the dict in the order of their first record, as the reference's do
        by_first = np.argsort(self.first, kind="stable").tolist()
        keys = [self.keys[i] for i in by_first]
        values: Iterable[list[Any]] = (
            map(list, zip(*([f[i] for i in by_first] for f in finals), strict=True))
            if finals
            else ([] for _ in keys)  # GROUP BY without aggregates
        )
        aggregator.states.update(zip(keys, values, strict=True))
        aggregator.dirty.update(zip(itertools.repeat("S"), keys))
        if coalesce:
            picked = ends[np.argsort(self.order[ends], kind="stable")]
        else:
            picked = np.empty(len(self.order), np.int64)
            picked[self.order] = np.arange(len(self.order))
        events = self.order[picked]
        rows = pa.array(self.rows[events])
        owner = self.owner
        window = None
        if self.starts is not None:
            starts = self.starts[events]
            window = (pa.array(starts), pa.array(starts + owner.size))
        return Changes(
            [g.take(rows) for g in self.groups],
            [c.results(picked) for c in self.columns],
            window,
            pa.array(self.stamps[events]),
            self.keys,
            segments.ids[picked],
        )


def _checkpoint(aggregator: Aggregator, out: Outputs) -> None:
    """Write stream time and the changed state to the changelog, as the reference does."""
    aggregator.checkpoint(out)


def _group_ids(groups: list[pa.Array], rows: IntArray) -> tuple[IntArray, list[tuple[Any, ...]]]:
    """A dense id for each selected row's group, and each id's group tuple."""
    codes: list[IntArray] = []
    values: list[list[Any]] = []
    for g in groups:
        encoded = pc.dictionary_encode(g.take(pa.array(rows)))
        codes.append(np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64))
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


class _Column(ABC):
    """One aggregate call's running values over a batch's sorted events."""

    @abstractmethod
    def finals(self, ends: IntArray) -> list[Any]:
        """Each key's state after the batch, in the aggregate's own representation."""

    @abstractmethod
    def results(self, picked: IntArray) -> pa.Array:
        """The aggregate's result after each picked (sorted) event."""


class _Kernel(ABC):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        self.logic = logic
        self.arrow = arrow
        self.arg_type = logic.arg_types[0].name if logic.arg_types else "BIGINT"

    @abstractmethod
    def run(
        self,
        priors: Sequence[Any],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
    ) -> _Column: ...


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


class _CountKernel(_Kernel):
    def run(
        self,
        priors: Sequence[Any],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
    ) -> _Column:
        ones = _valid(args[0], rows) if args else np.ones(len(rows), bool)
        prior = np.array([0 if p is None else p for p in priors], np.int64)
        running = prior[segments.ids] + segments.cumsum(ones.astype(np.int64))
        return _NumberColumn(running, None, self.arrow, np.int64)


class _SumKernel(_Kernel):
    def run(
        self,
        priors: Sequence[Any],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
    ) -> _Column:
        if self.arg_type == "DOUBLE":
            # a NULL adds 0.0, which leaves any sum but -0.0 unchanged; a sum from 0.0 never is
            values = _values(args[0], rows, np.float64, 0.0)
            prior = np.array([0.0 if p is None else p for p in priors], np.float64)
            running = segments.accumulate(np.add, values, prior)
            return _NumberColumn(running, None, self.arrow, np.float64)
        values = _values(args[0], rows, np.int64, 0)
        prior = np.array([0 if p is None else p for p in priors], np.int64)
        running = prior[segments.ids] + segments.cumsum(values)
        if self.arg_type == "INTEGER":
            running = running.astype(np.int32).astype(np.int64)  # wraps as _wrap32
        return _NumberColumn(running, None, self.arrow, np.int64)


class _AvgKernel(_Kernel):
    def run(
        self,
        priors: Sequence[Any],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
    ) -> _Column:
        valid = _valid(args[0], rows)
        prior_totals = [0 if p is None else p[0] for p in priors]
        prior_counts = np.array([0 if p is None else p[1] for p in priors], np.int64)
        counts = prior_counts[segments.ids] + segments.cumsum(valid.astype(np.int64))
        if self.arg_type == "DOUBLE":
            values = _values(args[0], rows, np.float64, 0.0)
            prior = np.array(prior_totals, np.float64)
            totals: np.ndarray = segments.accumulate(np.add, values, prior)
        else:
            # Python's total is unbounded: refuse a batch whose running total could overflow
            values = _values(args[0], rows, np.int64, 0)
            if len(values) and (int(values.min()) == _INT64_MIN):
                raise _RefusedError
            largest = max((abs(int(t)) for t in prior_totals), default=0)
            if largest + int(np.abs(values).max(initial=0)) * len(values) > _INT64_MAX:
                raise _RefusedError
            prior_int = np.array(prior_totals, np.int64)
            totals = prior_int[segments.ids] + segments.cumsum(values)
        return _AvgColumn(totals, counts, self.arg_type == "DOUBLE")


class _ExtremeKernel(_Kernel):
    def run(
        self,
        priors: Sequence[Any],
        args: Sequence[pa.Array],
        rows: IntArray,
        segments: _Segments,
    ) -> _Column:
        smallest = isinstance(self.logic, Min)
        valid = _valid(args[0], rows)
        dtype: type[Any]
        if self.arg_type == "DOUBLE":
            dtype = np.float64
            identity: Any = np.inf if smallest else -np.inf
        else:
            dtype = np.int64
            identity = _INT64_MAX if smallest else _INT64_MIN
        values = _values(args[0], rows, dtype, 0)
        values = np.where(valid, values, identity).astype(dtype)
        prior = np.array([identity if p is None else p for p in priors], dtype)
        if dtype is np.float64:
            # min() keeps the first of equals and does not propagate a later NaN; numpy's
            # minimum does neither, so such batches take the reference path
            for a in (values, prior):
                if np.isnan(a).any() or (np.signbit(a) & (a == 0)).any():
                    raise _RefusedError
        seen_before = np.array([p is not None for p in priors], bool)
        seen = seen_before[segments.ids] | (segments.cumsum(valid.astype(np.int64)) > 0)
        ufunc = np.minimum if smallest else np.maximum
        running = segments.accumulate(ufunc, values, prior)
        return _NumberColumn(running, ~seen, self.arrow, dtype)


class _NumberColumn(_Column):
    def __init__(
        self, running: np.ndarray, missing: np.ndarray | None, arrow: pa.DataType, dtype: Any
    ) -> None:
        self.running = running
        self.missing = missing
        self.arrow = arrow
        self.dtype = dtype

    def finals(self, ends: IntArray) -> list[Any]:
        values: list[Any] = self.running[ends].tolist()
        if self.missing is None:
            return values
        return [None if m else v for v, m in zip(values, self.missing[ends].tolist(), strict=True)]

    def results(self, picked: IntArray) -> pa.Array:
        values = self.running[picked]
        mask = self.missing[picked] if self.missing is not None else None
        if pa.types.is_int32(self.arrow):
            values = values.astype(np.int32)
        return pa.array(values, self.arrow, mask=mask)


class _AvgColumn(_Column):
    def __init__(self, totals: np.ndarray, counts: IntArray, floating: bool) -> None:
        self.totals = totals
        self.counts = counts
        self.floating = floating

    def finals(self, ends: IntArray) -> list[Any]:
        totals = self.totals[ends].tolist()
        counts = self.counts[ends].tolist()
        # the state holds int 0 until a value arrives, as Avg.init
        return [(t, c) if c else (0, 0) for t, c in zip(totals, counts, strict=True)]

    def results(self, picked: IntArray) -> pa.Array:
        counts = self.counts[picked]
        totals = self.totals[picked].astype(np.float64)
        means = np.zeros(len(picked), np.float64)
        with np.errstate(all="ignore"):  # inf / n and nan as a Python loop gives them
            np.divide(totals, counts, out=means, where=counts != 0)
        return pa.array(means, pa.float64())


__all__ = ["Changes", "VectorizedAggregator"]
