"""The numpy kernels of the vectorized aggregation: each aggregate as a computation per key.

A batch's events sorted by key (stably, so each key keeps its records' order) are `Segments`;
each supported aggregate (COUNT, SUM, AVG, MIN, MAX over numbers) has a `Kernel` that computes
its values over them, per event or per key, seeded with each key's state before the batch, and
keeps that state as numpy arrays (a `StateLayout` of state/columns.py). A kernel that meets
values whose result would differ from the reference path's raises `RefusedError` before any
state changes (ops/vectorized.py then runs the reference path on the batch).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregates import Aggregate, Avg, Count, Max, Min, Sum
from hispeed.plan.model import AggregateCall
from hispeed.state.columns import StateLayout

_NUMERIC = frozenset({"INTEGER", "BIGINT", "DOUBLE"})
_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)

IntArray = np.ndarray[Any, Any]  # int64, by convention
Ufunc = np.ufunc


class RefusedError(Exception):
    """This batch needs the reference path (raised before any state changes)."""


@dataclass
class Segments:
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


def stable_order(key: IntArray, bound: int) -> IntArray:
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


def supported_call(call: AggregateCall) -> bool:
    logic = call.logic
    kind = type(logic)
    if kind is Count:
        return len(call.args) <= 1
    if kind in (Sum, Avg, Min, Max):
        return len(call.args) == 1 and logic.arg_types[0].name in _NUMERIC
    return False


class KernelColumn:
    """One aggregate call's values over a batch: per sorted event, or per key (`per_event`
    False: only each key's final value, when no event's own result is asked for).

    `arrays` are the state's arrays (as the kernel's `dtypes`); `result` makes the aggregate's
    result from them, at the positions asked.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        result: Callable[[list[np.ndarray]], pa.Array],
        segments: Segments,
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


class Kernel(StateLayout):
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
        segments: Segments,
        running: bool,
    ) -> KernelColumn:
        """The call's values over the sorted events, from each key's prior state's arrays:
        per event if `running`, else per key (or per event, when that is how it computes)."""

    def result(self, arrays: list[np.ndarray]) -> pa.Array:
        """The aggregate's results from states held as this kernel's arrays."""
        return self._numbers(arrays)

    def _numbers(self, arrays: list[np.ndarray]) -> pa.Array:
        values = arrays[0]
        if pa.types.is_int32(self.arrow):
            values = values.astype(np.int32)
        return pa.array(values, self.arrow)


def kernel_for(call: AggregateCall) -> Kernel:
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
    prior: np.ndarray, ones: np.ndarray | None, segments: Segments, running: bool
) -> np.ndarray:
    """Prior counts plus the events counted (`ones`; None: every event), per event or per key."""
    if running:
        step = segments.cumsum(ones) if ones is not None else segments.ranks() + 1
        out: np.ndarray = prior[segments.ids] + step
        return out
    added = segments.reduce(np.add, ones) if ones is not None else segments.lengths
    total: np.ndarray = prior + added
    return total


class _CountKernel(Kernel):
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
        segments: Segments,
        running: bool,
    ) -> KernelColumn:
        ones = _valid(args[0], rows).astype(np.int64) if args else None
        return KernelColumn(
            [_counts(prior[0], ones, segments, running)], self._numbers, segments, running
        )


class _SumKernel(Kernel):
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
        segments: Segments,
        running: bool,
    ) -> KernelColumn:
        if self.floating:
            # a NULL adds 0.0, which leaves any sum but -0.0 unchanged; a sum from 0.0 never is
            values = _values(args[0], rows, np.float64, 0.0)
            sums = segments.accumulate(np.add, values, prior[0])
            return KernelColumn([sums], self._numbers, segments, True)
        values = _values(args[0], rows, np.int64, 0)
        if running:
            sums = prior[0][segments.ids] + segments.cumsum(values)
        else:
            sums = prior[0] + segments.reduce(np.add, values)
        if self.arg_type == "INTEGER":
            sums = sums.astype(np.int32).astype(np.int64)  # wraps as _wrap32
        return KernelColumn([sums], self._numbers, segments, running)


class _AvgKernel(Kernel):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        super().__init__(logic, arrow)
        self.dtypes = (np.float64 if self.floating else np.int64, np.int64)

    def result(self, arrays: list[np.ndarray]) -> pa.Array:
        return _means(arrays)

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
        segments: Segments,
        running: bool,
    ) -> KernelColumn:
        valid = _valid(args[0], rows).astype(np.int64)
        if self.floating:
            values = _values(args[0], rows, np.float64, 0.0)
            totals = segments.accumulate(np.add, values, prior[0])
            counts = _counts(prior[1], valid, segments, True)
            return KernelColumn([totals, counts], _means, segments, True)
        # Python's total is unbounded: refuse a batch whose running total could overflow
        values = _values(args[0], rows, np.int64, 0)
        if len(values) and (int(values.min()) == _INT64_MIN):
            raise RefusedError
        largest = max(int(prior[0].max(initial=0)), -int(prior[0].min(initial=0)))
        if largest + int(np.abs(values).max(initial=0)) * len(values) > _INT64_MAX:
            raise RefusedError
        if running:
            totals = prior[0][segments.ids] + segments.cumsum(values)
        else:
            totals = prior[0] + segments.reduce(np.add, values)
        counts = _counts(prior[1], valid, segments, running)
        return KernelColumn([totals, counts], _means, segments, running)


def _means(arrays: list[np.ndarray]) -> pa.Array:
    totals = arrays[0].astype(np.float64)
    counts = arrays[1]
    means = np.zeros(len(counts), np.float64)
    with np.errstate(all="ignore"):  # inf / n and nan as a Python loop gives them
        np.divide(totals, counts, out=means, where=counts != 0)
    return pa.array(means, pa.float64())


class _ExtremeKernel(Kernel):
    def __init__(self, logic: Aggregate, arrow: pa.DataType) -> None:
        super().__init__(logic, arrow)
        self.smallest = isinstance(logic, Min)
        self.dtypes = (np.float64 if self.floating else np.int64, np.bool_)

    def result(self, arrays: list[np.ndarray]) -> pa.Array:
        return self._extremes(arrays)

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
        segments: Segments,
        running: bool,
    ) -> KernelColumn:
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
                    raise RefusedError
        ufunc = np.minimum if self.smallest else np.maximum
        counted = valid.astype(np.int64)
        if running:
            extremes = segments.accumulate(ufunc, values, start)
            seen = seen_before[segments.ids] | (segments.cumsum(counted) > 0)
        else:
            extremes = ufunc(start, segments.reduce(ufunc, values))
            seen = seen_before | (segments.reduce(np.add, counted) > 0)
        return KernelColumn([extremes, seen], self._extremes, segments, running)

    def _extremes(self, arrays: list[np.ndarray]) -> pa.Array:
        values, seen = arrays
        if pa.types.is_int32(self.arrow):
            values = values.astype(np.int32)
        return pa.array(values, self.arrow, mask=~seen)
